"""Linux kernel interfaces used by minict: syscalls through ctypes, mounts, capabilities."""
