"""kubernetes: the Kubernetes DNS-Based Service Discovery specification, as CoreDNS serves it."""
