"""Accounts: who the users are, their roles, and how admins manage them."""
