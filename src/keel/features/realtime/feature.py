"""Realtime notifications over WebSocket."""

from keel.core.features import Feature
from keel.features.realtime.resources import realtime_resource
from keel.features.realtime.router import router

FEATURE = Feature(name="realtime", router=router, resources=realtime_resource)
