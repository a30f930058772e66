"""Typed aiohttp app keys: what the composition root puts in the app for the routes to read.

(Kept apart from app.py so route modules can import them without importing the app factory.)
"""

from __future__ import annotations

from aiohttp import web

from eventstore.keyring import KeyRing
from eventstore.store import EventStore
from projections.runner import ProjectionRunner
from service.access.token_store import TokenTable
from service.api.rendered import RenderedAt
from service.api.stream_slots import StreamSlots
from service.backend.client import BackendClient
from service.docker.adapter import DockerAdapter
from service.handling.handlers import CommandContext
from service.health.monitor import HealthMonitor
from service.metrics import Metrics
from service.orchestration.reconciler import Reconciler
from service.registries.pulls import ImagePuller
from service.settings import Settings

settings_key = web.AppKey("dtma.settings", Settings)
store_key = web.AppKey("dtma.store", EventStore)
runner_key = web.AppKey("dtma.runner", ProjectionRunner)
context_key = web.AppKey("dtma.context", CommandContext)
docker_key = web.AppKey("dtma.docker", DockerAdapter)
reconciler_key = web.AppKey("dtma.reconciler", Reconciler)
puller_key = web.AppKey("dtma.puller", ImagePuller)  # pulls images; what is pulling now
monitor_key = web.AppKey("dtma.health_monitor", HealthMonitor)
backend_key = web.AppKey("dtma.backend", BackendClient)
ring_key = web.AppKey("dtma.keyring", KeyRing)
metrics_key = web.AppKey("dtma.metrics", Metrics)
instance_key = web.AppKey("dtma.instance", str)  # this instance's id (service/instance.py)
statuses_key = web.AppKey("dtma.statuses", RenderedAt)  # GET /mcp-servers/status, per position
openapi_key = web.AppKey("dtma.openapi", bytes)  # the document, built once at startup
streams_key = web.AppKey("dtma.streams", StreamSlots)  # open SSE streams per token
tokens_key = web.AppKey("dtma.tokens", TokenTable)  # the named tokens and their roles
