"""The operations endpoints, which some middleware treats differently."""

OPERATIONS_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Probes and scrapes: no user data, called by machines (kubelet, Prometheus) by pod address,
so neither rate-limited nor held to the Host allow-list."""
