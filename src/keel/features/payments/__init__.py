"""Card checks done before any gateway call (the gateway client itself is in core)."""
