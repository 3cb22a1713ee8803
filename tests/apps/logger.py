"""A custom Gunicorn logger class: the worker must call its access() with Gunicorn objects."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger


class TaggingLogger(Logger):  # type: ignore[misc]
    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        assert resp.status.split()[0].isdigit() and req.method and "RAW_URI" in environ
        self.access_log.info("tagged %s", req.path)
        super().access(resp, req, environ, request_time)
