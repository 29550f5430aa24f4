"""Genesys's own AudioHook client against a real ``callsense serve`` (the keyed test model).

The peer is Genesys's reference implementation (``../shared/audiohook-reference``, prepared by
``.ci/install``): its protocol library, driven by ``audiohook_peer/driver.js``, streams a real
40 s stereo call (customer = ``external``, agent = ``internal``, PCMU 8 kHz) three times faster
than real time, and its jest protocol suite runs unchanged. Nobody on this project wrote that
client, so what it does (sequence numbers, positions, the close transaction, signing) is what
Genesys Cloud does, and every session must end without the library reporting a problem.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TESTDATA
from tests.live.gateway import stop
from tests.live.peer_server import (
    PeerServer,
    PeerSession,
    SlowModel,
    pcmu_stereo,
    peer_dir,
    run_driver,
)
from tools import system_assets

pytestmark = [pytest.mark.model, pytest.mark.slow]

CALL = TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav"
CALL_S = 40.0
STEREO = {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000}
BYTES_PER_S = 8000 * 2  # stereo PCMU
CLEAN_CLOSE = (1000, 1005)  # 1005: the close frame had no code (the reference client sends none)
PROBE_ID = "00000000-0000-0000-0000-000000000000"
# the suite's cases that need transcript events back (a transcription connector's job)
NO_TRANSCRIPTS = "Transcript Connector - Test "
WRONG_SECRET = "d3JvbmcgY2xpZW50IHNlY3JldCwgMzIgYnl0ZXMgbG9uZyE="

# every session the shared server sees at once (name: its sessions, one after the other)
SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "normal": [{}],
    "pause": [{"pause": [10, 10]}],
    "discarded": [{"discard": [10, 5]}],
    "reconnect": [{"stopAt": 15, "closeReason": "reconnect"}, {"startAt": 15, "continues": True}],
    "probe": [{"probe": True}],
    "wrong secret": [{"clientSecret": WRONG_SECRET, "timeout": 30}],
    "seq gap": [{"seqGapAt": 2}],
}


@pytest.fixture(scope="module")
def peer() -> Path:
    """The prepared reference implementation (a missing one fails: CI installs it)."""
    try:
        return peer_dir()
    except system_assets.MissingSystemAsset as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def call_pcmu(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recording as Genesys streams it: raw stereo PCMU, 8 kHz (the driver reads bytes)."""
    return pcmu_stereo(CALL, tmp_path_factory.mktemp("peer-audio") / "call.ulaw")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path) -> Iterator[PeerServer]:
    """One ``callsense serve`` for the module; its key has a client secret."""
    peer_server = PeerServer.create(tmp_path_factory.mktemp("peer-server"), keyed_model_dir)
    proc = peer_server.gateway.start()
    try:
        yield peer_server
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def sessions(
    peer: Path, server: PeerServer, call_pcmu: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[PeerSession]]:
    """Every scenario at once, as Genesys runs many sessions against one server (~20 s)."""
    return run_driver(peer, server, call_pcmu, SCENARIOS, tmp_path_factory.mktemp("peer-run"))


def assert_clean(session: PeerSession) -> None:
    """Opened, ended by the close transaction, nothing abnormal as the library saw it, and
    (a monitor) no audio played back."""
    why = session.describe()
    assert session.status == 101 and session.opened_ws, why
    assert session.problems == [], why
    assert session.received_types[-1] == "closed", why
    assert session.close_code in CLEAN_CLOSE, why
    assert session.raw["receivedBinary"] == 0, why
    for msg in session.received():
        assert msg["id"] == session.id and isinstance(msg["seq"], int), why


# a segment keeps the VAD's speech padding at its edges: speech cut by a pause may reach
# that far into the (silent) gap, never further
VAD_PADDING_S = 0.5


def spans(call: dict[str, Any], start: float, end: float) -> list[tuple[float, float, str]]:
    """(start, end, speaker) of the call's utterances that reach into [start, end) by more
    than the VAD's padding."""
    a, b = start + VAD_PADDING_S, end - VAD_PADDING_S
    return [(u["start"], u["end"], u["speaker"]) for u in call["utterances"]
            if u["start"] < b and u["end"] > a]  # fmt: skip


def find_key(value: Any, key: str) -> list[Any]:
    """Every value of ``key`` anywhere in a JSON document."""
    if isinstance(value, dict):
        found = [value[key]] if key in value else []
        return found + [x for v in value.values() for x in find_key(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in find_key(v, key)]
    return []


def test_a_call_is_opened_streamed_and_closed_then_stored(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """The whole life of a call as Genesys runs it, and what callsense keeps of it."""
    (session,) = sessions["normal"]
    assert_clean(session)
    signed = {"x-api-key", "signature", "signature-input", "audiohook-session-id"}
    assert signed <= set(session.raw["requestHeaders"])  # the key as Genesys sends it, signed
    opened = session.received("opened")[0]
    assert opened["parameters"]["media"] == [STEREO]  # the stereo offer, not a mono one
    pings = [e["msg"]["seq"] for e in session.sent("ping")]
    assert pings and {p["clientseq"] for p in session.received("pong")} == set(pings)
    assert session.audio_bytes == CALL_S * BYTES_PER_S
    assert session.last_position == CALL_S

    call = server.finished_call(session.id)
    assert call["status"] == "done"
    assert call["duration_s"] == pytest.approx(session.last_position, abs=0.1)
    assert {u["speaker"] for u in call["utterances"]} == {"customer", "agent"}
    ids = find_key(call, "conversation_id")
    assert ids, "the stored call does not name the Genesys conversation (no conversation_id)"
    assert set(ids) == {session.conversation_id}


def test_a_pause_keeps_the_platform_timeline(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """On hold for 10 s after 10 s: no audio meanwhile, positions go on, a gap is kept."""
    (session,) = sessions["pause"]
    assert_clean(session)
    (paused,) = session.sent("paused")
    (resumed,) = session.sent("resumed")
    assert paused["msg"]["position"] == "PT10S"
    assert resumed["msg"]["parameters"] == {"start": "PT10S", "discarded": "PT10S"}
    assert resumed["audioBytes"] == paused["audioBytes"] == 10 * BYTES_PER_S  # none in between
    assert session.last_position == CALL_S + 10

    call = server.finished_call(session.id)
    assert call["duration_s"] == pytest.approx(session.last_position, abs=0.1)
    inside = spans(call, 10.0, 20.0)
    assert inside == [], f"utterances in the pause [10 s, 20 s): {inside}"
    gaps = [g for found in find_key(call, "gaps") for g in found]
    assert any(g["start"] == pytest.approx(10) and g["duration"] == pytest.approx(10)
               for g in gaps), gaps  # fmt: skip


def test_discarded_audio_keeps_the_platform_timeline(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """5 s the platform dropped at 10 s: not sent, positions skip it, the call lasts as long."""
    (session,) = sessions["discarded"]
    assert_clean(session)
    (discarded,) = session.sent("discarded")
    assert discarded["msg"]["parameters"] == {"start": "PT10S", "discarded": "PT5S"}
    assert session.audio_bytes == (CALL_S - 5) * BYTES_PER_S
    assert session.last_position == CALL_S

    call = server.finished_call(session.id)
    assert call["duration_s"] == pytest.approx(session.last_position, abs=0.1)
    gaps = [g for found in find_key(call, "gaps") for g in found]
    assert any(g["start"] == pytest.approx(10) and g["duration"] == pytest.approx(5)
               for g in gaps), gaps  # fmt: skip
    inside = spans(call, 10.0, 15.0)
    assert inside == [], f"utterances in the discarded span [10 s, 15 s): {inside}"


def test_a_reconnect_continues_one_call(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """Close with reason reconnect after 15 s, a new session continues it: one stored call."""
    first, second = sessions["reconnect"]
    for session in (first, second):
        assert_clean(session)
    assert first.sent("close")[0]["msg"]["parameters"] == {"reason": "reconnect"}
    assert first.last_position == 15.0
    open_ = second.sent("open")[0]["msg"]
    assert open_["position"] == "PT15S"  # the positions go on from the first session
    assert open_["parameters"]["conversationId"] == first.conversation_id
    assert open_["parameters"]["continuedSessions"] == [
        {"id": first.id, "serverseq": first.raw["serverseq"], "clientseq": first.raw["clientseq"]}
    ]
    assert second.last_position == CALL_S

    call = server.finished_call(first.id)
    assert call["status"] == "done"
    assert call["duration_s"] == pytest.approx(second.last_position, abs=0.1)
    starts = [u["start"] for u in call["utterances"]]
    assert min(starts) < 15.0 < max(starts), "utterances of both sessions"
    assert max(u["end"] for u in call["utterances"]) == pytest.approx(CALL_S, abs=0.5)
    assert server.call(second.id).status_code == 404  # not a second call


def test_a_connection_probe_is_answered_and_not_stored(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """Genesys's probe (all-zero conversation and participant): opened, closed, no call."""
    (session,) = sessions["probe"]
    assert_clean(session)
    assert session.received_types == ["opened", "closed"]
    params = session.sent("open")[0]["msg"]["parameters"]
    assert params["conversationId"] == params["participant"]["id"] == PROBE_ID
    assert session.audio_bytes == 0
    assert server.call(session.id).status_code == 404


def test_a_wrong_client_secret_is_refused_at_the_upgrade(
    sessions: dict[str, list[PeerSession]],
) -> None:
    """Signed with another secret: 401 before any WebSocket exists."""
    (session,) = sessions["wrong secret"]
    assert session.status == 401, session.describe()
    assert not session.opened_ws and session.received() == []


def test_a_seq_gap_gets_disconnect_then_the_close_transaction(
    sessions: dict[str, list[PeerSession]], server: PeerServer
) -> None:
    """A lost message (seq jumps): the server says ``disconnect``, waits for the client's
    ``close``, answers ``closed``, and the socket closes normally."""
    (session,) = sessions["seq gap"]
    assert_clean(session)
    types = session.received_types
    assert "disconnect" in types and types.index("disconnect") < types.index("closed")
    disconnect = session.received("disconnect")[0]
    assert disconnect["parameters"]["reason"] == "error"
    assert isinstance(disconnect["id"], str) and disconnect["id"] == session.id
    close = session.sent("close")[0]["msg"]
    assert close["parameters"] == {"reason": "disconnect"}  # the library's answer
    assert close["seq"] > disconnect["clientseq"]
    call = server.finished_call(session.id)
    assert call["duration_s"] == pytest.approx(2.0, abs=0.5)  # it keeps what it received


def test_a_server_still_loading_refuses_the_upgrade_with_retry_after(
    tmp_path: Path, peer: Path, call_pcmu: Path, keyed_model_dir: Path
) -> None:
    """While its models load, the upgrade is answered 503 with Retry-After (never accepted
    then dropped); once loaded, the same client is let in. Loading is held by a model file
    that arrives only when the test releases it (``SlowModel``), so the timing is certain."""
    slow = SlowModel(keyed_model_dir, tmp_path / "slow-model")
    loading = PeerServer.create(tmp_path / "server", slow.dir)
    with slow.feeding(), ThreadPoolExecutor(1) as pool:
        starting = pool.submit(loading.gateway.start)  # returns once /readyz says ready
        try:
            _wait_until_listening(loading)
            refused = run_driver(peer, loading, call_pcmu, {"early": [{"timeout": 30}]}, tmp_path)
            (session,) = refused["early"]
            assert session.status == 503, session.describe()
            assert int(session.headers["retry-after"]) > 0
            assert not session.opened_ws
            assert loading.readyz().get("models") == "loading"  # it was loading all along
            slow.release()
            starting.result(timeout=180)
            later = run_driver(peer, loading, call_pcmu, {"later": [{"probe": True}]}, tmp_path)
            assert_clean(later["later"][0])
        finally:
            slow.release()
            stop(starting.result(timeout=180))


def _wait_until_listening(server: PeerServer) -> None:
    deadline = time.monotonic() + 120
    while server.readyz().get("models") != "loading":
        assert time.monotonic() < deadline, "the server never answered /readyz"
        time.sleep(0.1)


def test_the_reference_protocol_suite_passes(
    tmp_path: Path, peer: Path, server: PeerServer
) -> None:
    """Genesys's jest suite (``test/``), configured for this server: every test that applies
    passes. The Transcript Connector group is switched on for its one test a monitor answers
    (``supportedLanguages`` in ``opened``); its seven ``Test ...`` cases are left out, they
    wait for transcript events, which a monitor never sends back."""
    (tmp_path / "testconfig.cfg").write_text(
        "[EndPoint]\n"
        f"url={server.uri}\n"
        "[Authentication]\n"
        f"apiKey={server.gateway.key}\n"
        f"clientSecret={server.secret}\n"
        "[OpenParameters]\n"
        "customConfig={}\n"
        "language=en-US\n"
        "[Features]\n"
        "singleChannel=true\n"  # a mono offer alone is accepted too
        "doubleChannel=true\n"
        "transcriptionConnector=true\n"
    )
    (tmp_path / "test").symlink_to(peer / "test")  # it reads ./test/*.wav from its cwd too
    out = tmp_path / "jest.json"
    cmd = [
        system_assets.program("node"),
        str(peer / "node_modules" / "jest" / "bin" / "jest.js"),
        "--config", str(peer / "jest.config.js"), "--rootDir", str(peer),
        "--runInBand", "--ci", "--cacheDirectory", str(tmp_path / "jest-cache"),
        "--json", "--outputFile", str(out),
        # the other file tests the sample's AWS CDK stack (not in the shared copy)
        "--runTestsByPath", str(peer / "test" / "audiohook-api-messages.test.ts"),
        "--testNamePattern", f"^(?!.*{NO_TRANSCRIPTS})",
    ]  # fmt: skip
    env = {**os.environ, "FORCE_COLOR": "0"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert out.is_file(), done.stderr[-4000:]
    report = json.loads(out.read_text())
    results = {a["title"]: a for r in report["testResults"] for a in r["assertionResults"]}
    failed = {t: a["failureMessages"] for t, a in results.items() if a["status"] == "failed"}
    assert report["numRuntimeErrorTestSuites"] == 0, done.stderr[-4000:]
    assert failed == {}, done.stderr[-4000:]
    skipped = sorted(t for t, a in results.items() if a["status"] != "passed")
    assert len(skipped) == 7 and all(t.startswith(NO_TRANSCRIPTS) for t in skipped), skipped
    monitor = [t for t in results if t.startswith("Audiohook Monitor - ")]
    assert len(monitor) >= 6 and all(results[t]["status"] == "passed" for t in monitor)
    assert results["Transcript Connector - Supported Languages"]["status"] == "passed"
    assert done.returncode == 0, done.stderr[-4000:]
