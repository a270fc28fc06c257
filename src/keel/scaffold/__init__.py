"""Generators: `keel new project` and `keel new feature`."""
