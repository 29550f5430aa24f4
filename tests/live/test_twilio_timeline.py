"""Twilio's timeline through ``WS /v1/twilio`` on the real service (uvicorn on 127.0.0.1, the
keyed test model): chunks are placed by ``media.timestamp``, so time Twilio did not stream
is silence at its place, a track Twilio stops streaming does not hold the other back, the
stored call lasts what the stream lasted, and the call keeps its CallSid.

The angry call (tests.calls.ANGRY_CALL) escalates when its third angry customer turn closes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.live.client import Pacer
from tests.live.conftest import CallAudio, LiveService
from tests.live.twilio_signing import signed, twilio_key

pytestmark = pytest.mark.model

CHUNK = 160  # 20 ms of 8 kHz mu-law, as Twilio sends it
GAP_S = 10.0


class _Stream:
    """The messages of one Twilio Media Stream, numbered as Twilio numbers them."""

    def __init__(self, call_sid: str) -> None:
        self.call_sid = call_sid
        self.stream_sid = "MZ" + call_sid[2:]
        self.seq = 0

    def msg(self, event: str, **body: Any) -> str:
        self.seq += 1
        return json.dumps(
            {"event": event, "sequenceNumber": str(self.seq), "streamSid": self.stream_sid,
             **body}
        )  # fmt: skip

    def start(self) -> list[str]:
        start = {
            "accountSid": "AC" + "0" * 32,
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound", "outbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        connected = json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        return [connected, self.msg("start", start=start)]

    def media(self, track: str, chunk: int, timestamp_ms: int, data: bytes) -> str:
        payload = base64.b64encode(data).decode()
        media = {"track": track, "chunk": str(chunk), "timestamp": str(timestamp_ms),
                 "payload": payload}  # fmt: skip
        return self.msg("media", media=media)

    def stop(self) -> str:
        return self.msg("stop", stop={"accountSid": "AC" + "0" * 32, "callSid": self.call_sid})


def _chunks(
    stream: _Stream, tracks: dict[str, bytes], *, place: Any, until: dict[str, float]
) -> Iterable[tuple[float, str]]:
    """(Twilio time at the chunk's end, message) for each 20 ms chunk of each track, in
    Twilio's order: a track's audio up to ``until[track]`` s, each chunk at ``place(audio
    time)``."""
    n = max(len(d) for d in tracks.values())
    for i in range(0, n, CHUNK):
        for track, data in tracks.items():
            if i / 8000 >= until.get(track, float("inf")) or i >= len(data):
                continue
            at, chunk = place(i / 8000), data[i : i + CHUNK]
            yield (
                at + len(chunk) / 8000,
                stream.media(track, i // CHUNK + 1, round(at * 1000), chunk),
            )


async def _send(
    service: LiveService,
    key: str,
    stream: _Stream,
    timed: list[tuple[float, str]],
    *,
    extra: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Stream paced by Twilio time (8x), then wait for a decision before ``stop``; the
    decisions stored by then."""
    url = service.ws("/v1/twilio", key=key)
    store = service.runtime.store
    async with connect(url, additional_headers=signed(url)) as ws:
        for message in stream.start():
            await ws.send(message)
        pacer = Pacer(speed=8.0)
        for i, (at, message) in enumerate(timed):
            if extra and i in extra:
                await ws.send(extra[i])
            await ws.send(message)
            while pacer.sent_s < at:
                await pacer.tick()
        deadline = time.monotonic() + 20
        while not (found := store.decisions(stream.call_sid)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await ws.send(stream.stop())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)  # nothing is sent back; the server closes
    return found


def test_a_gap_in_twilio_time_is_silence_at_its_place(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    """Twilio streamed nothing for 10 s (both tracks) between two turns: the later turns keep
    their Twilio time, the call lasts what the stream lasted, marks and DTMF are ignored."""
    timeline = call_audio.timeline
    cut = round((timeline[0].end + timeline[1].start) / 2 / 0.02) * 0.02  # between two turns
    key = twilio_key(live_service.runtime, "twilio-gap")
    stream = _Stream("CA" + "a1" * 16)
    tracks = {"inbound": call_audio.mulaw_channel(0), "outbound": call_audio.mulaw_channel(1)}

    def place(t: float) -> float:
        return t if t < cut else t + GAP_S

    timed = list(_chunks(stream, tracks, place=place, until={}))
    mark = stream.msg("mark", mark={"name": "greeting-played"})
    dtmf = stream.msg("dtmf", dtmf={"track": "inbound_track", "digit": "5"})
    decided = asyncio.run(_send(live_service, key, stream, timed, extra={40: mark, 41: dtmf}))
    assert [d["rule"] for d in decided] == ["angry-streak"]

    store = live_service.runtime.store
    record = store.get(stream.call_sid)
    assert record is not None and record.status == "done", record
    stream_end = max(end for end, _ in timed)  # where Twilio's last chunk ended
    assert record.duration_s == pytest.approx(stream_end, abs=0.001)
    assert record.duration_s == pytest.approx(call_audio.duration + GAP_S, abs=0.05)
    utterances = store.utterances(stream.call_sid)
    assert [u["speaker"] for u in utterances] == [t.speaker for t in timeline]
    for u, turn in zip(utterances, timeline, strict=True):
        start, end = place(turn.start), place(turn.end)
        assert start - 0.5 <= u["start"] < end and start < u["end"] <= end + 0.5, (u, turn)
    (escalation,) = store.decisions(stream.call_sid)
    assert escalation["at"] > timeline[4].start + GAP_S  # in the third angry turn, shifted


def test_a_track_twilio_stops_streaming_does_not_hold_the_other_back(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    """The outbound track goes quiet after the agent's first turn (Twilio sends no packets
    for it): the caller's turns still reach the policies while the call goes on."""
    timeline = call_audio.timeline
    key = twilio_key(live_service.runtime, "twilio-quiet")
    stream = _Stream("CA" + "b2" * 16)
    tracks = {"inbound": call_audio.mulaw_channel(0), "outbound": call_audio.mulaw_channel(1)}
    quiet_from = timeline[0].end + 0.3
    timed = list(_chunks(stream, tracks, place=lambda t: t, until={"outbound": quiet_from}))
    decided = asyncio.run(_send(live_service, key, stream, timed))
    assert [d["rule"] for d in decided] == ["angry-streak"]  # before Twilio said stop
    store = live_service.runtime.store
    record = store.get(stream.call_sid)
    assert record is not None and record.status == "done"
    assert record.duration_s == pytest.approx(max(end for end, _ in timed), abs=0.001)
    speakers = [u["speaker"] for u in store.utterances(stream.call_sid)]
    assert speakers == ["agent", "customer", "customer", "customer"]


def test_the_api_shows_the_calls_callsid(live_service: LiveService, call_audio: CallAudio) -> None:
    """The call stored under its CallSid keeps it as ``call_sid`` (where its routes act)."""
    key = twilio_key(live_service.runtime, "twilio-sid")
    stream = _Stream("CA" + "c3" * 16)
    short = {"inbound": call_audio.mulaw_channel(0)[:16000]}  # two seconds, one track
    timed = list(_chunks(stream, short, place=lambda t: t, until={}))

    async def main() -> None:
        url = live_service.ws("/v1/twilio", key=key)
        async with connect(url, additional_headers=signed(url)) as ws:
            for message in [*stream.start(), *(m for _, m in timed), stream.stop()]:
                await ws.send(message)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)

    asyncio.run(main())
    headers = {"Authorization": f"Bearer {live_service.key}"}
    body = httpx.get(f"{live_service.base_url}/v1/calls/{stream.call_sid}", headers=headers)
    assert body.status_code == 200, body.text
    detail = body.json()
    assert detail["call_sid"] == stream.call_sid and detail["kind"] == "live"
    assert detail["conversation_id"] is None and detail["participant_id"] is None
    record = live_service.runtime.store.get(stream.call_sid)
    assert record is not None and record.context.call_sid == stream.call_sid
