"""The one WebSocket loop every live route runs: key check, accept, read frames, end the
call and close, whatever the platform. A ``Protocol`` is only the platform's part: it reads
that platform's frames, opens and feeds the call, and tells the client about an error in the
platform's own way; how a connection starts, ends, fails and is recorded is the same for all.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from fastapi import WebSocket, WebSocketDisconnect

from callsense.connectors.live.session import (
    CLOSE_POLICY,
    LiveSession,
    ProtocolError,
    authorized,
    close_quietly,
)

__all__ = ["Protocol", "serve"]

log = logging.getLogger(__name__)


class Protocol(ABC):
    """One connection's platform side. ``live`` is its call once the client opened one."""

    name: ClassVar[str]
    # what the call's record says when the client goes away without ending the call
    ended_early: ClassVar[str]

    def __init__(self, websocket: WebSocket) -> None:
        self.ws = websocket
        self.live: LiveSession | None = None

    @abstractmethod
    async def receive(self, message: dict[str, Any]) -> bool:
        """Act on one frame (``text`` or ``bytes``); False when the client ended the call."""

    def reading(self) -> bool:
        """Whether to go on reading frames (a client too slow for our messages: no)."""
        return True

    def outcome(self, error: str | None, code: int) -> tuple[str | None, int]:
        """The call's error and the close code once reading stopped without an exception."""
        return error, code

    async def refused(self, exc: ProtocolError) -> None:  # noqa: B027 - optional hook
        """Tell the client it broke the protocol, the platform's way (before the close)."""

    async def failed(self, exc: Exception) -> None:  # noqa: B027 - optional hook
        """Tell the client the session failed on our side (before the close)."""


async def serve(websocket: WebSocket, protocol: Protocol) -> None:
    """Run one live connection to its end; an error ends this session, never the service."""
    if not await authorized(websocket):
        await websocket.close(CLOSE_POLICY, "a valid API key is required")
        return
    await websocket.accept()
    error: str | None = None
    code = 1000
    try:
        while protocol.reading():
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                error = protocol.ended_early if protocol.live is not None else None
                break
            if not await protocol.receive(message):
                break
        error, code = protocol.outcome(error, code)
    except WebSocketDisconnect:
        error = protocol.ended_early
    except ProtocolError as exc:
        code, error = exc.code, str(exc)
        log.info("%s: protocol error, closing (%d)", protocol.name, exc.code)
        with contextlib.suppress(Exception):  # the client may be gone already
            await protocol.refused(exc)
    except Exception as exc:  # this session ends, the service goes on
        code, error = 1011, type(exc).__name__
        log.warning("%s: session failed: %s", protocol.name, type(exc).__name__)
        with contextlib.suppress(Exception):
            await protocol.failed(exc)
    finally:
        if protocol.live is not None:
            await protocol.live.finish(error)
        await close_quietly(websocket, code, error or "")
