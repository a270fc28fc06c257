"""Domain features: one package each (router, schemas, models, service, repository)."""
