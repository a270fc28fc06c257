"""Tokens and passwords: the cryptography every feature relies on, in one place."""
