"""Live call streaming over WebSockets: raw PCM, Twilio Media Streams, Genesys AudioHook.

``routers`` is what the app includes; each route checks the API key itself.
"""

from __future__ import annotations

from fastapi import APIRouter

from callsense.connectors.live.audiohook import router as audiohook_router
from callsense.connectors.live.stream import router as stream_router
from callsense.connectors.live.twilio import router as twilio_router

__all__ = ["routers"]

routers: list[APIRouter] = [stream_router, twilio_router, audiohook_router]
