"""Cards, charges and what they leave behind (the gateway client itself is in core)."""
