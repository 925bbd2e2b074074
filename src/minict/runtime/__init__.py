"""The OCI runtime: turns a bundle (config.json and a root filesystem) into a running process."""
