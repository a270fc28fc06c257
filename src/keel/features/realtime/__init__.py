"""Realtime notifications over WebSocket: each user's own events, admins optionally all."""
