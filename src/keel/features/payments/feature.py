"""Payments of orders: no routes of its own (orders' `pay` charges through it)."""

from keel.core.features import Feature

FEATURE = Feature(name="payments", requires=("orders",))
