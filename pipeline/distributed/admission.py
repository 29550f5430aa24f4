"""A gateway's admission gate: at most ``max_calls`` live calls, and a graceful drain.

The WebSocket routes ``check`` before they spend a key check on an upgrade, ``enter`` with the
checked key before accepting the call (refuse with 503 / 429 / close code 1013 when it says
no) and ``leave`` when the call ends, however it ends. Between the two, a connection whose
call has not started yet is also counted per key (``opening`` / ``opened``): honest clients
start within milliseconds, so a key holding many idle connections is hoarding slots. On shutdown
``drain`` stops new calls and waits for the running ones to finish, so a rolling restart
of gateways behind a load balancer loses no call that was already connected.
Pure asyncio, no FastAPI: the service wires it in.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

__all__ = ["Admission", "AdmissionStats", "Refused"]


class Refused(Exception):
    """The gateway cannot take this call now (full or draining); try another gateway."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "full", "draining" or "key"


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    active: int
    max_calls: int
    draining: bool
    refused: int


class Admission:
    """Counts live calls on one event loop; no lock needed, every method runs on it."""

    def __init__(
        self, max_calls: int, *, per_key: int | None = None, unstarted_per_key: int | None = None
    ) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1 (got {max_calls})")
        self.max_calls = max_calls
        self.per_key = per_key
        self.unstarted_per_key = unstarted_per_key
        self._by_key: dict[str, int] = {}
        self._unstarted: dict[str, int] = {}
        self._active = 0
        self._refused = 0
        self._draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    def check(self) -> str | None:
        """Why a new call would be refused now ("draining" / "full"), without admitting it:
        a route answers a full gateway before it spends a key check on the upgrade."""
        reason = None
        if self._draining:
            reason = "draining"
        elif self._active >= self.max_calls:
            reason = "full"
        if reason is not None:
            self._refused += 1
        return reason

    def enter(self, key: str = "") -> str | None:
        """Admit one call of the client with API key ``key``, once that key was checked (an
        upgrade still checking its key holds no slot, so a burst of them cannot refuse
        honest calls): None, or why not ("draining", "full", or "key": beyond
        ``per_key``)."""
        held = self._by_key.get(key, 0)
        reason = self.check()
        if reason is None and self.per_key is not None and held >= self.per_key:
            self._refused += 1
            reason = "key"
        if reason is not None:
            return reason
        self._active += 1
        self._idle.clear()
        self._by_key[key] = held + 1
        return None

    def leave(self, key: str = "") -> None:
        """The call ``enter(key)`` admitted ended, however it ended."""
        held = self._by_key.get(key, 0)
        if held <= 0:
            raise RuntimeError("leave() without a matching enter()")
        if held > 1:
            self._by_key[key] = held - 1
        else:
            del self._by_key[key]
        self._active -= 1
        if self._active == 0:
            self._idle.set()

    def opening(self, key: str = "") -> bool:
        """Count one admitted connection of ``key`` whose call has not started; False (and
        not counted) when the key already holds ``unstarted_per_key`` such connections."""
        held = self._unstarted.get(key, 0)
        if self.unstarted_per_key is not None and held >= self.unstarted_per_key:
            self._refused += 1
            return False
        self._unstarted[key] = held + 1
        return True

    def opened(self, key: str = "") -> None:
        """The connection ``opening(key)`` counted started its call, or ended without."""
        held = self._unstarted.get(key, 0)
        if held <= 0:
            raise RuntimeError("opened() without a matching opening()")
        if held > 1:
            self._unstarted[key] = held - 1
        else:
            del self._unstarted[key]

    @asynccontextmanager
    async def call(self, key: str = "") -> AsyncIterator[None]:
        """``async with admission.call(key):`` around a call's whole life; raises
        ``Refused``."""
        reason = self.enter(key)
        if reason is not None:
            raise Refused(reason)
        try:
            yield
        finally:
            self.leave(key)

    async def drain(self, timeout_s: float | None = None) -> bool:
        """Refuse new calls, wait for running ones; True when all ended within ``timeout_s``."""
        self._draining = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    @property
    def ready(self) -> bool:
        """For ``/readyz``: a draining or full gateway should get no new calls."""
        return not self._draining and self._active < self.max_calls

    def stats(self) -> AdmissionStats:
        return AdmissionStats(self._active, self.max_calls, self._draining, self._refused)
