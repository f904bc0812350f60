"""Live updates: a subscribed client learns that memories changed, whichever process changed them.

A client subscribes to resource URIs and is told when one changes (it then reads it again):

- ``memory://users/{user_id}/memories`` and ``memory://users/{user_id}/stats``: any write to one of
  that user's memories (the user id percent-encoded, as ``urllib.parse.quote(user_id, safe="")``);
- ``memory://memories/{memory_id}``: a write to that memory (superseded, promoted, reinforced,
  forgotten);
- ``memory://stats``: any write to the default user's memories.

One task per server process follows the database's change feed while anyone is subscribed, so a
write through another server, a script or an import on the same database is announced as well as
one made here, a fraction of a second later (``ServerSettings.watch_interval_s``).

Two protocol eras are served. At 2026-07-28 a client opens ``subscriptions/listen`` and the
events go out on the SDK's subscription bus; earlier clients use ``resources/subscribe``, and this
module keeps each session's URIs and sends it ``notifications/resources/updated``. Under bearer
tokens a subscription may name only the token's own user's resources; a URI that is not one of
the above is refused with the list of those that are.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote

from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from ..errors import MemoryMCPError
from ..memory import HierarchicalMemory, MemoryChange
from ..memory.validation import clip

log = logging.getLogger("memory_mcp")
_BATCH = 1000  # changes announced at a time

SUBSCRIBABLE = (
    "memory://users/{user_id}/memories, memory://users/{user_id}/stats, memory://memories/{memory_id}, "
    "memory://stats"
)
_USER_URI = re.compile(r"memory://users/([^/?#]+)/(memories|stats)")
_MEMORY_URI = re.compile(r"memory://memories/([^/?#]+)")


def user_uri(user_id: str, what: str) -> str:
    return f"memory://users/{quote(user_id, safe='')}/{what}"


def changed_uris(changes: Iterable[MemoryChange], default_user: str) -> list[str]:
    """Every subscribable URI the changes touch, each once, in order."""
    uris: dict[str, None] = {}
    for change in changes:
        uris[f"memory://memories/{change.memory_id}"] = None
        uris[user_uri(change.user_id, "memories")] = None
        uris[user_uri(change.user_id, "stats")] = None
        if change.user_id == default_user:
            uris["memory://stats"] = None
    return list(uris)


class LiveUpdates:
    """The subscriptions of one server process and the task that announces changes to them."""

    def __init__(self, holder: Any, bus: InMemorySubscriptionBus):
        self.holder = holder  # the EngineHolder: the engine, the settings, who a caller is
        self.bus = bus
        self.listen_handler = _CheckedListen(self, bus)
        # Earlier-era subscribers: each session's URIs. The SDK gives no word of a session that
        # ends; one is forgotten when a notification to it fails.
        self._sessions: dict[Any, set[str]] = {}
        self._streams = 0  # open subscriptions/listen streams
        # The change feed is read only while someone listens (polling an idle server's database
        # ten times a second cost 0.7% of a core): from where it stood when the first one came.
        self._someone = asyncio.Event()
        self._from = 0

    def listening(self) -> bool:
        return self._streams > 0 or any(self._sessions.values())

    async def begin(self) -> None:
        """A subscription is about to start: if it is the only one, follow the feed from now."""
        engine = self.holder.engine
        if not self.listening() and engine is not None:
            self._from = await engine.last_change()
        self._someone.set()

    async def follow(self, engine: HierarchicalMemory) -> None:
        """Announce every change to the database while anyone listens, until cancelled."""
        interval = self.holder.settings.watch_interval_s
        seq: int | None = None
        while True:
            if not self.listening():
                seq = None
                self._someone.clear()
                await self._someone.wait()
            if seq is None:
                seq = self._from
            try:
                batch = await engine.changes_since(seq, limit=_BATCH)
            except MemoryMCPError as exc:  # the database is unreachable for now: keep trying
                log.warning("live updates paused: %s", exc)
                await asyncio.sleep(max(interval, 1.0))
                continue
            except Exception:  # a bug must not end live updates for the life of the process
                log.exception("live updates failed; trying again")
                await asyncio.sleep(max(interval, 1.0))
                continue
            if batch:
                seq = batch[-1].seq
                await self.announce(changed_uris(batch, self.holder.settings.user_id))
                if len(batch) == _BATCH:
                    continue  # more are waiting
            await asyncio.sleep(interval)

    async def announce(self, uris: list[str]) -> None:
        for uri in uris:
            await self.bus.publish(ResourceUpdated(uri=uri))
        for session, wanted in list(self._sessions.items()):
            for uri in uris:
                if uri not in wanted:
                    continue
                try:
                    await session.send_resource_updated(uri)
                except Exception:  # the client is gone: forget its subscriptions
                    self._sessions.pop(session, None)
                    break

    async def check(self, uri: str) -> None:
        """Refuse a URI that is not subscribable or, under a token, not the token's user's."""
        owner = self.holder.owner()
        if uri == "memory://stats":
            return
        if found := _USER_URI.fullmatch(uri):
            if owner is not None and unquote(found[1]) != owner:
                raise MCPError(INVALID_PARAMS, f"{clip(uri)} is another user's: a token subscribes to its own user only")
            return
        if found := _MEMORY_URI.fullmatch(uri):
            engine = self.holder.engine
            try:
                if engine is not None:
                    await engine.get(found[1], user_id=owner)
            except MemoryMCPError as exc:
                raise MCPError(INVALID_PARAMS, f"cannot subscribe to {clip(uri)}: {exc}") from None
            return
        raise MCPError(INVALID_PARAMS, f"cannot subscribe to {clip(uri)}; subscribable: {SUBSCRIBABLE}")

    async def subscribe(self, ctx: Any, params: SubscribeRequestParams) -> EmptyResult:
        """``resources/subscribe`` (protocol versions before 2026-07-28)."""
        await self.check(params.uri)
        await self.begin()
        self._sessions.setdefault(ctx.session, set()).add(params.uri)
        return EmptyResult()

    async def unsubscribe(self, ctx: Any, params: UnsubscribeRequestParams) -> EmptyResult:
        wanted = self._sessions.get(ctx.session, set())
        wanted.discard(params.uri)
        if not wanted:
            self._sessions.pop(ctx.session, None)
        return EmptyResult()


class _CheckedListen(ListenHandler):
    """``subscriptions/listen`` whose resource URIs are checked first (see ``LiveUpdates.check``)."""

    def __init__(self, live: LiveUpdates, bus: InMemorySubscriptionBus):
        super().__init__(bus)
        self._live = live

    async def __call__(self, ctx: Any, params: Any) -> Any:
        for uri in params.notifications.resource_subscriptions or ():
            await self._live.check(uri)
        await self._live.begin()
        self._live._streams += 1
        try:
            return await super().__call__(ctx, params)
        finally:
            self._live._streams -= 1
