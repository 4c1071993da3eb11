"""API client and informers."""
