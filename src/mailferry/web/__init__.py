"""The web dashboard and REST API: ``create_app(service, settings) -> FastAPI``.

``api`` (``/api``, JSON, OpenAPI at ``/api/openapi.json``) and ``pages`` (HTML, htmx polling) are
thin routers over ``operations``, which calls ``service.batches``; ``schemas`` are the API's own
shapes (``present`` converts to them); ``credentials`` keeps the admin password (scrypt), API
tokens and sessions; ``security`` checks them and CSRF. ``static/htmx.min.js`` is vendored (see
``static/NOTICE``): no CDN, no build step.
"""

from mailferry.web.app import create_app
from mailferry.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]
