"""minict: a container runtime you can read, from pull to execve."""

__version__ = "0.1.0"
