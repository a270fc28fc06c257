"""Cards, charges and what they leave behind (and the gateway client they go through)."""
