"""Cluster DNS: answers for the cluster domain built from Services, EndpointSlices and Pods
(pure), forwarding with a cache for other names, and the UDP/TCP server edge."""
