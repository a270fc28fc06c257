"""Jobs as the API shows them: list, read and cancel (the queue itself is `core.jobs`)."""
