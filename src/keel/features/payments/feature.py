"""Payments of orders: no routes of its own (orders' `pay` charges through it)."""

from keel.core.features import Feature
from keel.features.payments.resources import gateway_resource

FEATURE = Feature(name="payments", requires=("orders",), resources=gateway_resource)
