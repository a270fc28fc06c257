"""Keel: a production-grade FastAPI shop backend."""

__version__ = "0.1.0"
