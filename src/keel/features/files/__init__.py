"""Files: streamed uploads to storage, ranged downloads, direct (presigned) uploads."""
