"""The HTTP handlers: Jupyter's authentication on every one (no token, no
data: 403), XSRF on every POST (Jupyter's own check), JSON in and out."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ._feed import MAX_ENDED, JobFeed, NotFound, Refused

#: the longest a listing request waits for a change (``?wait=S``)
MAX_WAIT = 30.0
#: the resource name Jupyter's authorizer sees for these handlers
AUTH_RESOURCE = "notebook_ext"


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, feed: JobFeed) -> None:
        self.feed = feed

    def _json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.finish(json.dumps(data, default=str))


class JobsHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        try:
            ended = int(self.get_argument("ended", "50"))
        except ValueError:
            raise web.HTTPError(400, "ended must be a whole number") from None
        if not 0 <= ended <= MAX_ENDED:
            raise web.HTTPError(400, f"ended must be between 0 and {MAX_ENDED}")
        try:
            wait = min(MAX_WAIT, max(0.0, float(self.get_argument("wait", "0"))))
        except ValueError:
            raise web.HTTPError(400, "wait must be a number of seconds") from None
        have = self.request.headers.get("If-None-Match") or None
        # with ?wait=S and the ETag it has, a page is answered when the jobs change (or after S seconds)
        etag, body = await self.feed.listing(ended, unlike=have, wait=wait if have else 0.0)
        self.set_header("ETag", etag)  # of the jobs alone: a page that has them gets a 304
        self.set_header("Cache-Control", "no-cache")
        if have is not None and etag in have:
            self.set_status(304)
            self.finish()
            return
        self.set_header("Content-Type", "application/json")
        self.finish(body)


class JobHandler(_Base):
    @web.authenticated
    @authorized
    async def get(self, uid: str) -> None:
        try:
            self._json(await self.feed.one(uid))
        except NotFound as exc:
            raise web.HTTPError(404, str(exc)) from None


class ControlHandler(_Base):
    @web.authenticated
    @authorized
    async def post(self, uid: str, action: str) -> None:
        user = getattr(self.current_user, "username", None) or "a user"
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "the body must be JSON, e.g. {\"reason\": \"...\"}") from None
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise web.HTTPError(400, "reason must be a string")
        try:
            record = await self.feed.request(uid, action, sender=f"{user} in the Jupyter server",
                                             reason=reason[:200] if reason else None)
        except NotFound as exc:
            raise web.HTTPError(404, str(exc)) from None
        except Refused as exc:
            self._json({"message": str(exc)}, status=409)
            return
        self._json({"message": f"{action} requested: its kernel acts within a second", "job": record}, status=202)


def handlers(base_url: str, feed: JobFeed) -> list[tuple[str, type, dict[str, Any]]]:
    root = base_url.rstrip("/") + "/notebook-ext/api/jobs"
    args = {"feed": feed}
    return [
        (root + r"/?", JobsHandler, args),
        (root + r"/(?P<uid>[^/]+)/(?P<action>cancel|stop)/?", ControlHandler, args),
        (root + r"/(?P<uid>[^/]+)/?", JobHandler, args),
    ]
