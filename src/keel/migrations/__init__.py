"""Alembic migrations, shipped inside the package so `keel migrate` works from an install."""
