"""The web dashboard and REST API: ``create_app(service, settings) -> FastAPI``.

``api`` (``/api``, JSON, OpenAPI at ``/api/openapi.json``) and ``pages`` (HTML, htmx polling) are
thin routers over ``operations``, which calls ``service.batches``; ``schemas`` are the API's own
shapes (``present`` converts to them); ``credentials`` keeps the admin password (scrypt), API
tokens and sessions (``passwords``: the scrypt hash); ``security`` checks them and CSRF; ``login``
logs in, throttled by ``throttle``; ``hosts`` refuses a Host not ours (DNS rebinding); ``access``
logs each request; ``ops`` serves ``/healthz`` and ``/metrics``. ``static/htmx.min.js`` is
vendored (see ``static/NOTICE``): no CDN, no build step.
"""

from mailferry.web.app import create_app
from mailferry.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
