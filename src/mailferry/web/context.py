"""What every request handler reaches through ``request.app.state.web``."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.templating import Jinja2Templates

from mailferry.service.batches import BatchService
from mailferry.web.credentials import AuthStore
from mailferry.web.folders import FolderReader
from mailferry.web.settings import WebSettings


@dataclass(frozen=True)
class Web:
    service: BatchService
    settings: WebSettings
    auth: AuthStore
    folders: FolderReader
    templates: Jinja2Templates

    def close(self) -> None:
        self.auth.close()
        self.folders.close()
