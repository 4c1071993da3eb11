"""Built-in container images that svcnet implements itself (serve-hostname, netexec)."""
