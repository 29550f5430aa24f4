"""Test clients for the live protocols: paced senders that record what came back and when."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection

FRAME_S = 0.02


@dataclass
class Received:
    """A server message, the wall time it came, and the audio seconds sent by then."""

    message: dict[str, Any]
    wall: float
    sent_s: float


@dataclass
class Pacer:
    """Sends 20 ms frames at ``speed`` x real time; ``sent_s`` is the audio sent so far."""

    speed: float = 1.0
    sent_s: float = 0.0
    t0: float = field(default_factory=time.monotonic)

    async def tick(self) -> None:
        self.sent_s += FRAME_S
        delay = self.t0 + self.sent_s / self.speed - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def collect(ws: ClientConnection, pacer: Pacer, out: list[Received]) -> None:
    """Read JSON messages until the server closes."""
    async for raw in ws:
        out.append(Received(json.loads(raw), time.monotonic(), pacer.sent_s))


def frames(data: bytes, frame_bytes: int) -> list[bytes]:
    return [data[i : i + frame_bytes] for i in range(0, len(data), frame_bytes)]


async def send_pcm(
    ws: ClientConnection,
    data: bytes,
    frame_bytes: int,
    pacer: Pacer,
    *,
    until: Callable[[], bool] = lambda: False,
) -> bool:
    """Send frames paced; stop early (returning True) once ``until()`` holds."""
    for chunk in frames(data, frame_bytes):
        if until():
            return True
        await ws.send(chunk)
        await pacer.tick()
    return until()


def twilio_messages(inbound: bytes, outbound: bytes, *, call_sid: str) -> list[str]:
    """A Twilio Media Streams conversation for two mu-law 8 kHz tracks (20 ms chunks)."""
    stream_sid = "MZ" + call_sid[2:]
    seq = 0

    def msg(event: str, **body: Any) -> str:
        nonlocal seq
        seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(seq), "streamSid": stream_sid, **body}
        )

    out = [json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})]
    out.append(
        msg(
            "start",
            start={
                "accountSid": "AC" + "0" * 32,
                "streamSid": stream_sid,
                "callSid": call_sid,
                "tracks": ["inbound", "outbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        )
    )
    chunk = 160  # 20 ms of 8 kHz mu-law
    for i in range(0, min(len(inbound), len(outbound)), chunk):
        for track, data in (("inbound", inbound), ("outbound", outbound)):
            payload = base64.b64encode(data[i : i + chunk]).decode()
            out.append(
                msg(
                    "media",
                    media={
                        "track": track,
                        "chunk": str(i // chunk + 1),
                        "timestamp": str(i // 8),
                        "payload": payload,
                    },
                )
            )
    return out


def twilio_stop(call_sid: str) -> str:
    return json.dumps(
        {
            "event": "stop",
            "sequenceNumber": "999999",
            "streamSid": "MZ" + call_sid[2:],
            "stop": {"accountSid": "AC" + "0" * 32, "callSid": call_sid},
        }
    )


class AudioHookClient:
    """The Genesys side of an AudioHook session."""

    def __init__(self, ws: Any, session_id: str) -> None:
        self.ws, self.id, self.seq, self.serverseq = ws, session_id, 0, 0
        self.position = 0.0  # the platform's stream position its messages carry (seconds)

    async def send(self, type_: str, **parameters: Any) -> None:
        self.seq += 1
        await self.ws.send(
            json.dumps(
                {
                    "version": "2",
                    "type": type_,
                    "seq": self.seq,
                    "serverseq": self.serverseq,
                    "id": self.id,
                    "position": f"PT{self.position:.3f}S",
                    "parameters": parameters,
                }
            )
        )

    async def recv(self) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(await asyncio.wait_for(self.ws.recv(), 30))
        self.serverseq = msg["seq"]
        return msg
