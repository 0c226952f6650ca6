"""ClusterDNS: a Kubernetes cluster DNS server that reads CoreDNS's Corefile."""

__version__ = "0.1.0"
SERVER_NAME = "ClusterDNS"
