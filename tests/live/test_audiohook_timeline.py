"""AudioHook as Genesys Cloud really behaves: pauses, discarded audio, reconnects, probes,
the close handshake after a ``disconnect``, the open's language, and a monitor that never
plays audio back. Against a real service (uvicorn on 127.0.0.1, the keyed test model)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.calls_store import CallRecord
from callsense.pipeline.config import CacheConfig, load_config
from tests.live.client import AudioHookClient
from tests.live.conftest import CallAudio, LiveService, serving

pytestmark = pytest.mark.model

STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
BYTES_PER_S = 8000 * 2  # stereo PCMU
PAUSE_S = 10.0

STREAK_POLICY = """\
policy: streaks
{on_pause}rules:
  - id: angry-streak
    when: {{speaker: customer, emotion: ANGRY, consecutive: 3}}
    once: true
    then: [{{escalate: {{priority: high}}}}]
"""


def _service(tmp: Path, model_dir: Path, on_pause: str) -> Iterator[LiveService]:
    policy = tmp / "streaks.yaml"
    policy.write_text(STREAK_POLICY.format(on_pause=on_pause))
    base = load_config(None, model=str(model_dir), schema=AppConfig, environ={})
    cfg = base.model_copy(update={"cache": CacheConfig(enabled=False), "policies": [policy]})
    with serving(tmp, cfg) as service:
        yield service


@pytest.fixture(scope="module")
def resetting(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[LiveService]:
    yield from _service(tmp_path_factory.mktemp("reset"), keyed_model_dir, "")


@pytest.fixture(scope="module")
def continuing(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path
) -> Iterator[LiveService]:
    tmp = tmp_path_factory.mktemp("continue")
    yield from _service(tmp, keyed_model_dir, "on_pause: continue\n")


def _open_params(**extra: Any) -> dict[str, Any]:
    return {
        "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
        "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
        "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "+15550100"},
        "media": [STEREO],
        **extra,
    }


async def _stream(client: AudioHookClient, audio: bytes) -> None:
    """Frames of 100 ms, the position advancing with them (as fast as the server takes)."""
    step = BYTES_PER_S // 10
    for i in range(0, len(audio), step):
        chunk = audio[i : i + step]
        await client.ws.send(chunk)
        client.position += len(chunk) / BYTES_PER_S


async def _recv_type(client: AudioHookClient, type_: str) -> dict[str, Any]:
    while True:
        msg = await client.recv()
        if msg["type"] == type_:
            return msg


def _finished(service: LiveService, call_id: str) -> CallRecord:
    deadline = time.monotonic() + 60
    while True:
        record = service.runtime.store.get(call_id)
        if record is not None and record.status in ("done", "failed"):
            return record
        assert time.monotonic() < deadline, f"call {call_id} never finished"
        time.sleep(0.05)


def _pause_point(call_audio: CallAudio) -> float:
    """Between the second and the third angry customer turn."""
    customer = [t for t in call_audio.timeline if t.speaker == "customer"]
    return round((customer[1].end + customer[2].start) / 2, 2)


def _paused_call(service: LiveService, call_audio: CallAudio, kind: str) -> CallRecord:
    session_id = str(uuid.uuid4())
    cut = _pause_point(call_audio)
    split = int(cut * 8000) * 2

    async def main() -> None:
        async with service.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **_open_params())
            assert (await client.recv())["type"] == "opened"
            await _stream(client, call_audio.mulaw8k[:split])
            client.position = cut
            span = {"start": f"PT{cut}S", "discarded": f"PT{PAUSE_S}S"}
            if kind == "paused":
                await client.send("paused")
                client.position = cut + PAUSE_S
                await client.send("resumed", **span)
            else:
                client.position = cut + PAUSE_S
                await client.send("discarded", **span)
            await _stream(client, call_audio.mulaw8k[split:])
            await client.send("close", reason="end")
            assert (await _recv_type(client, "closed"))["type"] == "closed"

    asyncio.run(main())
    return _finished(service, session_id)


def _plain_call(service: LiveService, call_audio: CallAudio) -> CallRecord:
    """The same call streamed without a gap."""
    session_id = str(uuid.uuid4())

    async def main() -> None:
        async with service.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **_open_params())
            await client.recv()
            await _stream(client, call_audio.mulaw8k)
            await client.send("close", reason="end")
            await _recv_type(client, "closed")

    asyncio.run(main())
    return _finished(service, session_id)


@pytest.mark.parametrize("kind", ["paused", "discarded"])
def test_a_gap_keeps_the_platform_timeline(
    resetting: LiveService, call_audio: CallAudio, kind: str
) -> None:
    record = _paused_call(resetting, call_audio, kind)
    cut = _pause_point(call_audio)
    assert record.status == "done"
    assert record.duration_s == pytest.approx(call_audio.duration + PAUSE_S, abs=0.05)
    assert record.summary is not None
    assert record.summary["gaps"] == [{"start": cut, "duration": PAUSE_S, "kind": kind}]
    utterances = resetting.runtime.store.utterances(record.id)
    baseline = resetting.runtime.store.utterances(_plain_call(resetting, call_audio).id)
    assert len(utterances) == len(baseline) == len(call_audio.timeline)
    for stored, plain in zip(utterances, baseline, strict=True):
        shift = PAUSE_S if plain["start"] > cut else 0.0
        # each utterance keeps the platform's time: after the gap, later by the gap
        assert stored["start"] == pytest.approx(plain["start"] + shift, abs=0.1)
        assert stored["end"] == pytest.approx(plain["end"] + shift, abs=0.1)


def test_a_pause_breaks_an_angry_streak_by_default(
    resetting: LiveService, call_audio: CallAudio
) -> None:
    record = _paused_call(resetting, call_audio, "paused")
    assert resetting.runtime.store.decisions(record.id) == []
    assert record.summary is not None and record.summary["escalated"] is False


def test_on_pause_continue_counts_the_streak_across_the_pause(
    continuing: LiveService, call_audio: CallAudio
) -> None:
    record = _paused_call(continuing, call_audio, "paused")
    decisions = continuing.runtime.store.decisions(record.id)
    assert [d["rule"] for d in decisions] == ["angry-streak"]
    # the streak's last utterance is after the pause, at its platform time
    assert decisions[0]["at"] > _pause_point(call_audio) + PAUSE_S


def test_a_replay_of_the_stored_call_decides_as_the_live_call_did(
    resetting: LiveService, call_audio: CallAudio
) -> None:
    """The stored transcript keeps the gap, so the replay resets the streak as live did."""
    from callsense.pipeline.session import replay_transcript
    from callsense.rules.engine import PolicyEngine

    record = _paused_call(resetting, call_audio, "paused")
    transcript = resetting.runtime.store.transcript(record.id)
    assert transcript is not None and [g.kind for g in transcript.gaps] == ["paused"]
    for on_pause, expected in (("", []), ("on_pause: continue\n", ["angry-streak"])):
        engine = PolicyEngine.from_text(STREAK_POLICY.format(on_pause=on_pause))
        assert [d.rule for d in replay_transcript(transcript, engine)] == expected


def test_a_reconnect_continues_the_same_call(resetting: LiveService, call_audio: CallAudio) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    cut = _pause_point(call_audio)
    split = int(cut * 8000) * 2
    lost = 2.0  # audio the platform did not stream while it reconnected

    async def main() -> None:
        async with resetting.audiohook(first) as ws:
            client = AudioHookClient(ws, first)
            await client.send("open", **_open_params())
            await client.recv()
            await _stream(client, call_audio.mulaw8k[:split])
            await client.send("close", reason="reconnect")
            assert (await _recv_type(client, "closed"))["type"] == "closed"
            seqs = {"id": first, "serverseq": client.serverseq, "clientseq": client.seq}
        async with resetting.audiohook(second) as ws:
            client = AudioHookClient(ws, second)
            client.position = cut + lost
            await client.send("open", **_open_params(continuedSessions=[seqs]))
            assert (await client.recv())["type"] == "opened"
            await _stream(client, call_audio.mulaw8k[split:])
            await client.send("close", reason="end")
            await _recv_type(client, "closed")

    asyncio.run(main())
    record = _finished(resetting, first)
    assert resetting.runtime.store.get(second) is None  # one call, not two
    assert record.duration_s == pytest.approx(call_audio.duration + lost, abs=0.05)
    assert record.summary is not None
    assert record.summary["gaps"] == [{"start": cut, "duration": lost, "kind": "reconnect"}]
    utterances = resetting.runtime.store.utterances(first)
    baseline = resetting.runtime.store.utterances(_plain_call(resetting, call_audio).id)
    assert len(utterances) == len(baseline)
    assert utterances[-1]["start"] == pytest.approx(baseline[-1]["start"] + lost, abs=0.1)


def test_a_probe_is_answered_and_not_stored(resetting: LiveService) -> None:
    session_id = str(uuid.uuid4())
    zero = "00000000-0000-0000-0000-000000000000"

    async def main() -> list[str]:
        async with resetting.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            params = _open_params(conversationId=zero, participant={"id": zero, "ani": ""})
            await client.send("open", **params)
            opened = await client.recv()
            await client.send("close", reason="end")
            closed = await client.recv()
            return [opened["type"], closed["type"]]

    assert asyncio.run(main()) == ["opened", "closed"]
    time.sleep(0.3)
    assert resetting.runtime.store.get(session_id) is None


def test_no_acceptable_media_is_opened_with_no_media(resetting: LiveService) -> None:
    session_id = str(uuid.uuid4())
    opus = {"type": "audio", "format": "opus", "channels": ["external"], "rate": 48000}

    async def main() -> dict[str, Any]:
        async with resetting.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **_open_params(media=[opus]))
            opened = await client.recv()
            await client.send("close", reason="end")
            assert (await client.recv())["type"] == "closed"
            return opened

    opened = asyncio.run(main())
    assert opened["type"] == "opened" and opened["parameters"]["media"] == []
    assert resetting.runtime.store.get(session_id) is None


def test_a_disconnect_waits_for_the_clients_close(resetting: LiveService) -> None:
    """A protocol error: ``disconnect`` (with the session's id), the client's ``close`` is
    answered with ``closed``, and the socket closes normally."""
    session_id = str(uuid.uuid4())

    async def main() -> tuple[list[dict[str, Any]], int]:
        async with resetting.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **_open_params())
            said = [await client.recv()]
            client.seq += 1  # a lost message: seq gap
            await client.send("ping")
            said.append(await client.recv())
            await client.send("close", reason="error")
            said.append(await client.recv())
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                assert closed.rcvd is not None
                return said, closed.rcvd.code
            raise AssertionError("the server kept the socket open")

    said, code = asyncio.run(main())
    assert [m["type"] for m in said] == ["opened", "disconnect", "closed"]
    assert said[1]["parameters"]["reason"] == "error" and said[1]["id"] == session_id
    assert code == 1000


def test_an_early_disconnect_names_the_session_from_the_upgrade(resetting: LiveService) -> None:
    session_id = str(uuid.uuid4())

    async def main() -> dict[str, Any]:
        async with resetting.audiohook(session_id) as ws:
            await ws.send("{not json")
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    disconnect = asyncio.run(main())
    assert disconnect["type"] == "disconnect" and disconnect["id"] == session_id


def test_the_open_language_and_supported_languages(
    resetting: LiveService, call_audio: CallAudio
) -> None:
    session_id = str(uuid.uuid4())

    async def main() -> dict[str, Any]:
        async with resetting.audiohook(session_id) as ws:
            client = AudioHookClient(ws, session_id)
            await client.send("open", **_open_params(language="ja-JP", supportedLanguages=True))
            opened = await client.recv()
            await _stream(client, call_audio.mulaw8k[: BYTES_PER_S * 2])
            await client.send("close", reason="end")
            await _recv_type(client, "closed")
            return opened

    opened = asyncio.run(main())
    assert "ja-JP" in opened["parameters"]["supportedLanguages"]
    assert _finished(resetting, session_id).language == "ja"


def test_a_monitor_keeps_its_replies_as_text(
    live_service: LiveService, call_audio: CallAudio
) -> None:
    """AudioHook never plays audio back: replies are stored, none is synthesised, and the
    summary's count is the stored list's length."""
    record = _plain_call(live_service, call_audio)
    assert record.summary is not None and record.replies is not None
    assert record.summary["replies"] == len(record.replies) > 0
    assert all(r.get("engine") is None and r.get("duration_s") is None for r in record.replies)
