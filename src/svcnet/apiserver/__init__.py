"""The HTTP API server: routes, discovery, watch, authn/authz, TLS."""
