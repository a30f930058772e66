"""Typed aiohttp app keys: what the composition root puts in the app for the routes to read.

(Kept apart from app.py so route modules can import them without importing the app factory.)
"""

from __future__ import annotations

from aiohttp import web

from eventstore import keyring, store
from projections import runner
from service import metrics, settings
from service.access import token_store
from service.api.rendered import RenderedAt
from service.api.stream_slots import StreamSlots
from service.backend import client
from service.docker import adapter
from service.handling import context
from service.health import monitor
from service.orchestration import reconciler
from service.registries import pulls
from service.stdio import bridges

settings_key = web.AppKey("dtma.settings", settings.Settings)
store_key = web.AppKey("dtma.store", store.EventStore)
runner_key = web.AppKey("dtma.runner", runner.ProjectionRunner)
context_key = web.AppKey("dtma.context", context.CommandContext)
docker_key = web.AppKey("dtma.docker", adapter.DockerAdapter)
reconciler_key = web.AppKey("dtma.reconciler", reconciler.Reconciler)
puller_key = web.AppKey("dtma.puller", pulls.ImagePuller)  # pulls images; what is pulling now
monitor_key = web.AppKey("dtma.health_monitor", monitor.HealthMonitor)
backend_key = web.AppKey("dtma.backend", client.BackendClient)
ring_key = web.AppKey("dtma.keyring", keyring.KeyRing)
metrics_key = web.AppKey("dtma.metrics", metrics.Metrics)
instance_key = web.AppKey("dtma.instance", str)  # this instance's id (service/instance.py)
statuses_key = web.AppKey("dtma.statuses", RenderedAt)  # GET /mcp-servers/status, per position
openapi_key = web.AppKey("dtma.openapi", bytes)  # the document, built once at startup
streams_key = web.AppKey("dtma.streams", StreamSlots)  # open SSE streams per token
tokens_key = web.AppKey("dtma.tokens", token_store.TokenTable)  # the named tokens and their roles
api_url_key = web.AppKey("dtma.api_url", str)  # where this host reaches the API
# a bridge per running stdio replica
bridges_key = web.AppKey("dtma.stdio_bridges", bridges.Bridges)
