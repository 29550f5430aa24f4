"""The live protocols against the real service: uvicorn on 127.0.0.1, the keyed test model.

The angry call (tests.calls.ANGRY_CALL) has three angry customer turns; the default policy
escalates when the third one closes (~20 s into a 24.5 s call), so a decision that comes
back before the last frame was sent came mid-call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live.client import (
    AudioHookClient,
    Pacer,
    Received,
    collect,
    send_pcm,
    twilio_messages,
    twilio_stop,
)
from tests.live.conftest import CallAudio, LiveService
from tests.live.twilio_signing import signed, twilio_key

pytestmark = pytest.mark.model

STEREO_8K_FRAME = 160 * 2 * 2  # 20 ms of 8 kHz interleaved stereo int16
STEREO_16K_FRAME = 320 * 2 * 2


def start_message(call_id: str, rate: int = 8000, **extra: Any) -> str:
    msg = {
        "type": "start",
        "call_id": call_id,
        "sample_rate": rate,
        "channels": 2,
        "encoding": "pcm16",
        "roles": {"0": "customer", "1": "agent"},
        **extra,
    }
    return json.dumps(msg)


def of_type(received: list[Received], kind: str) -> list[Received]:
    return [r for r in received if r.message["type"] == kind]


def escalations(received: list[Received]) -> list[Received]:
    return [r for r in of_type(received, "decision") if r.message["action"] == "escalate"]


async def stream_call(
    service: LiveService,
    call_id: str,
    data: bytes,
    *,
    rate: int = 8000,
    speed: float = 1.0,
    stop_on_escalation: bool = False,
    **start: Any,
) -> tuple[list[Received], Pacer, bool]:
    received: list[Received] = []
    pacer = Pacer(speed=speed)
    frame = STEREO_8K_FRAME if rate == 8000 else STEREO_16K_FRAME
    async with connect(service.ws("/v1/stream"), max_size=None) as ws:
        await ws.send(start_message(call_id, rate, **start))
        reader = asyncio.create_task(collect(ws, pacer, received))
        early = await send_pcm(
            ws,
            data,
            frame,
            pacer,
            until=(lambda: bool(escalations(received))) if stop_on_escalation else (lambda: False),
        )
        await ws.send(json.dumps({"type": "stop"}))
        await asyncio.wait_for(reader, 60)
    return received, pacer, early


@pytest.mark.slow
def test_stream_in_real_time_escalates_before_the_stream_ends(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    received, pacer, early = asyncio.run(
        stream_call(live_service, "rt-call-1", call_audio.pcm8k, speed=1.0, stop_on_escalation=True)
    )
    assert early, "no escalation came back while the call's audio was still being sent"
    (esc,) = escalations(received)
    assert esc.message["rule"] == "angry-streak"
    assert esc.message["params"]["priority"] == "high"
    # mid-call: at least 3 s of the call were still to be sent ...
    assert esc.sent_s < call_audio.duration - 3.0
    # ... and the client really was at real time when it came
    assert abs((esc.wall - pacer.t0) - esc.sent_s) < 1.0
    # it came soon after the third angry turn ended (VAD end silence + processing)
    third_angry = [t for t in call_audio.timeline if t.speaker == "customer"][2]
    assert third_angry.start < esc.message["at"] <= third_angry.end + 0.2
    assert esc.message["at"] < esc.sent_s < esc.message["at"] + 2.0
    utterances = [r.message for r in of_type(received, "utterance")]
    customer = [u for u in utterances if u["speaker"] == "customer"]
    assert [u["emotion"] for u in customer] == ["ANGRY"] * 3
    assert all(u["closed_at"] >= u["end"] for u in utterances)
    (end,) = of_type(received, "end")
    assert end.message["summary"]["escalated"] is True
    stored = live_service.runtime.store.get("rt-call-1")
    assert stored is not None and stored.status == "done" and stored.escalated


def test_stream_16k_utterances_follow_the_timeline(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    received, _, _ = asyncio.run(
        stream_call(live_service, "fast-16k", call_audio.pcm16k, rate=16000, speed=8.0)
    )
    utterances = [r.message for r in of_type(received, "utterance")]
    assert [u["speaker"] for u in utterances] == [t.speaker for t in call_audio.timeline]
    for u, turn in zip(utterances, call_audio.timeline, strict=True):
        # each turn is one utterance, within VAD's margins (the batch pipeline's are the same)
        assert turn.start - 0.5 <= u["start"] < turn.end
        assert turn.start < u["end"] <= turn.end + 0.5
    (end,) = of_type(received, "end")
    assert end.message["summary"]["utterances"] == len(call_audio.timeline)
    assert end.message["summary"]["duration_s"] == pytest.approx(call_audio.duration, abs=0.05)
    assert all("audio_b64" in r.message for r in of_type(received, "reply"))


def test_twilio_media_streams_both_tracks(live_service: LiveService, call_audio: CallAudio) -> None:
    call_sid = "CA" + "1f" * 16
    messages = twilio_messages(
        call_audio.mulaw_channel(0), call_audio.mulaw_channel(1), call_sid=call_sid
    )
    store = live_service.runtime.store
    url = live_service.ws("/v1/twilio", key=twilio_key(live_service.runtime, "twilio-tracks"))

    async def main() -> list[dict[str, Any]]:
        async with connect(url, additional_headers=signed(url)) as ws:  # signed by Twilio
            pacer = Pacer(speed=8.0)
            for i, text in enumerate(messages):
                await ws.send(text)
                if i > 1 and i % 2 == 1:  # one tick per pair of track chunks
                    await pacer.tick()
            # mid-call: the decision is stored before Twilio says stop
            deadline = time.monotonic() + 30
            while not (found := store.decisions(call_sid)) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await ws.send(twilio_stop(call_sid))
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)  # nothing is sent back; the server closes
        return found

    before_stop = asyncio.run(main())
    assert [d["rule"] for d in before_stop] == ["angry-streak"]
    record = store.get(call_sid)
    assert record is not None and record.status == "done" and record.escalated
    assert record.context.call_sid == call_sid  # where its routes act
    speakers = [u["speaker"] for u in store.utterances(call_sid)]
    assert speakers == [t.speaker for t in call_audio.timeline]


def test_audiohook_open_stream_close(live_service: LiveService, call_audio: CallAudio) -> None:
    session_id = "e160e428-53e2-487c-977d-96989bf5c99d"
    stereo = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
    mono = {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000}

    async def main() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with live_service.audiohook(session_id) as ws:
            c = AudioHookClient(ws, session_id)
            await c.send(
                "open",
                organizationId="o1",
                conversationId="conv-1",
                participant={"id": "p1", "ani": "+15550100"},
                media=[mono, stereo],
                language="en-US",
            )
            opened = await c.recv()
            await c.send("ping")
            pong = await c.recv()
            pacer = Pacer(speed=8.0)
            for i in range(0, len(call_audio.mulaw8k), 320):  # 20 ms of stereo PCMU
                await ws.send(call_audio.mulaw8k[i : i + 320])
                await pacer.tick()
            await c.send("close", reason="end")
            closed = await c.recv()
            return opened, pong, closed

    opened, pong, closed = asyncio.run(main())
    assert opened["type"] == "opened" and opened["clientseq"] == 1 and opened["id"] == session_id
    assert opened["parameters"]["media"] == [stereo]
    assert (pong["type"], pong["clientseq"], pong["seq"]) == ("pong", 2, 2)
    assert (closed["type"], closed["clientseq"]) == ("closed", 3)
    decisions = live_service.runtime.store.decisions(session_id)
    assert [d["rule"] for d in decisions] == ["angry-streak"]
    speakers = [u["speaker"] for u in live_service.runtime.store.utterances(session_id)]
    assert speakers == [t.speaker for t in call_audio.timeline]


def test_refused_without_a_key(live_service: LiveService) -> None:
    """401 at the upgrade: the connection never opens (no accept-then-close)."""

    async def attempt(path: str, key: str | None) -> int:
        with pytest.raises(InvalidStatus) as info:
            async with connect(live_service.ws(path, key=key)):
                pass
        return info.value.response.status_code

    for path in ("/v1/stream", "/v1/twilio", "/v1/audiohook"):
        assert asyncio.run(attempt(path, None)) == 401
        assert asyncio.run(attempt(path, "csk_000000000000_" + "x" * 43)) == 401


async def _violation(service: LiveService, path: str, first: str | bytes) -> tuple[list[str], int]:
    """Send one bad message; return what the server said and its close code."""
    said: list[str] = []
    async with connect(service.ws(path)) as ws:
        await ws.send(first)
        try:
            while True:
                said.append(str(await asyncio.wait_for(ws.recv(), 30)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return said, closed.rcvd.code
    raise AssertionError("the server did not close")


async def _twilio_violation(service: LiveService, first: str) -> tuple[list[str], int]:
    """``_violation`` on ``/v1/twilio``, whose upgrade Twilio signs."""
    url = service.ws("/v1/twilio", key=twilio_key(service.runtime, "twilio-violation"))
    said: list[str] = []
    async with connect(url, additional_headers=signed(url)) as ws:
        await ws.send(first)
        try:
            while True:
                said.append(str(await asyncio.wait_for(ws.recv(), 30)))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return said, closed.rcvd.code
    raise AssertionError("the server did not close")


def test_protocol_violations_close_that_session_only(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    async def main() -> tuple[list[tuple[list[str], int]], list[Received]]:
        healthy = asyncio.create_task(
            stream_call(live_service, "healthy-neighbour", call_audio.pcm8k, speed=6.0)
        )
        await asyncio.sleep(0.5)
        bad = [
            await _violation(live_service, "/v1/stream", b"\x00\x01" * 160),
            await _violation(live_service, "/v1/stream", start_message("bad", rate=44100)),
            await _violation(live_service, "/v1/stream", "{not json"),
            await _twilio_violation(
                live_service,
                json.dumps({"event": "media", "media": {"track": "inbound", "payload": "AAAA"}}),
            ),
        ]
        received, _, _ = await healthy
        return bad, received

    bad, received = asyncio.run(main())
    # (AudioHook's violations and close handshake: tests/live/test_audiohook_timeline.py)
    (binary_first, bad_rate, not_json, media_first) = bad
    assert binary_first[1] == 1003 and "start message" in json.loads(binary_first[0][0])["message"]
    assert bad_rate[1] == 1007 and "sample_rate" in json.loads(bad_rate[0][0])["message"]
    assert not_json[1] == 1007
    assert media_first[1] == 1007
    # the neighbour streamed through all of that and got its whole call
    assert len(escalations(received)) == 1
    (end,) = of_type(received, "end")
    assert end.message["summary"]["utterances"] == len(call_audio.timeline)


def test_client_that_disconnects_mid_call_keeps_its_decisions(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    third_angry_end = [t for t in call_audio.timeline if t.speaker == "customer"][2].end
    # cut 2 s after the third angry turn: its end-of-speech silence has closed it by then
    cut = int((third_angry_end + 2.0) * 8000) * 4  # bytes of stereo int16 at 8 kHz

    async def main() -> None:
        async with connect(live_service.ws("/v1/stream")) as ws:
            await ws.send(start_message("gone-mid-call"))
            await send_pcm(ws, call_audio.pcm8k[:cut], STEREO_8K_FRAME, Pacer(speed=20.0))
        # the socket is closed without "stop"

    asyncio.run(main())
    store = live_service.runtime.store
    deadline = time.monotonic() + 30
    while (rec := store.get("gone-mid-call")) is None or rec.status == "running":
        assert time.monotonic() < deadline, "the session did not end"
        time.sleep(0.1)
    assert rec.status == "done" and rec.escalated
    assert rec.error and "disconnected" in rec.error
    assert [d["rule"] for d in store.decisions("gone-mid-call")] == ["angry-streak"]


def test_reply_audio_is_wav(live_service: LiveService, call_audio: CallAudio) -> None:
    received, _, _ = asyncio.run(
        stream_call(live_service, "replies", call_audio.pcm8k[: 8000 * 4 * 3], speed=20.0)
    )
    replies = of_type(received, "reply")
    assert replies, "the dialogue greets every call"
    audio = base64.b64decode(replies[0].message["audio_b64"])
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"


FIRST_ANGER = """\
policy: first-anger
rules:
  - id: first-anger
    when: {speaker: customer, emotion: ANGRY}
    once: true
    then:
      - escalate: {priority: urgent}
"""


def test_a_stream_runs_the_stored_policy_it_names(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    headers = {"Authorization": f"Bearer {live_service.key}", "content-type": "application/yaml"}
    resp = httpx.put(
        f"{live_service.base_url}/v1/policies/first-anger?active=false",
        content=FIRST_ANGER,
        headers=headers,
    )
    assert resp.status_code in (200, 201), resp.text
    received, _, _ = asyncio.run(
        stream_call(
            live_service, "named-policy", call_audio.pcm8k, speed=40.0, policy="first-anger"
        )
    )
    (esc,) = escalations(received)
    assert (esc.message["policy"], esc.message["rule"]) == ("first-anger", "first-anger")
    first_angry = next(r for r in of_type(received, "utterance") if r.message["emotion"] == "ANGRY")
    assert esc.message["at"] == first_angry.message["end"]  # not the third: its own rule
    assert live_service.runtime.store.get("named-policy").requested_policy == "first-anger"

    async def unknown() -> tuple[int, str]:
        async with connect(live_service.ws("/v1/stream")) as ws:
            await ws.send(start_message("no-such-policy", policy="nope"))
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await ws.recv()
        return closed.value.rcvd.code, closed.value.rcvd.reason

    code, reason = asyncio.run(unknown())
    assert code == 1007 and "no stored policy named 'nope'" in reason
