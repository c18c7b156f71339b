"""Serve collected static files from the ASGI app with Starlette's StaticFiles."""

from __future__ import annotations

from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.staticfiles import StaticFiles


class StaticMount:
    """Send ``prefix``-ed HTTP requests to StaticFiles, everything else to ``app``."""

    def __init__(self, app, *, prefix: str, directory: Path):
        self.app = app
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.static = StaticFiles(directory=str(directory), check_dir=False)

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            scope = dict(scope)
            scope["root_path"] = scope.get("root_path", "")
            scope["path"] = "/" + scope["path"][len(self.prefix) :]
            try:
                return await self.static(scope, receive, send)
            except HTTPException as exc:  # StaticFiles raises 404/405 for Starlette's handler, absent here
                response = PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
                return await response(scope, receive, send)
        return await self.app(scope, receive, send)
