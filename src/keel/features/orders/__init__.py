"""Orders: stock reserved atomically at creation, released on cancellation."""
