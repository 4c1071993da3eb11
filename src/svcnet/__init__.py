"""svcnet: Kubernetes Service networking that really runs."""
