"""minict-runc: runc's command line on minict's runtime, for podman, containerd and Kubernetes."""
