"""The operations endpoints, which some middleware treats differently."""

OPERATIONS_PATHS = frozenset({"/health", "/ready", "/metrics"})
"""Probes and scrapes: called by machines (kubelet, Prometheus), never rate-limited."""

PROBE_PATHS = frozenset({"/health", "/ready"})
"""No data at all, called by pod address: exempt from the Host allow-list. `/metrics` is
exempt only when its token guards it (a browser led there by DNS rebinding has no token)."""
