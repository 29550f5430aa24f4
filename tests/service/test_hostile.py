"""Hostile input against a real service (uvicorn on 127.0.0.1, issue 19): what is refused at
the door, what reaches the log, and what a client may learn of the server's files."""

from __future__ import annotations

import logging
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.calls_store import CallStore
from callsense.connectors.cli import app as cli_app
from callsense.connectors.retention import record_locations
from callsense.connectors.storage import make_engine
from callsense.core.wire import MAX_TEXT_CHARS
from tests.conftest import ROOT
from tests.service.conftest import Receiver, Service, light_config, serve
from tests.service.hostile_audio import silent_wav, surround_silence_flac

SHIPPED_POLICY = ROOT / "configs" / "policies" / "default.yaml"


# --- audio refused at upload, before it is queued ------------------------------------------


def _zero_length_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:  # a valid header and not one sample
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
    return path


def _wav_99_channels(path: Path) -> Path:
    path.write_bytes(silent_wav(99, 1600))  # 0.1 s at 16 kHz
    return path


def _surround_silence(path: Path) -> Path:
    """10 minutes of 7.1 silence as FLAC: 0.2 MB that would decode to 0.3 GB."""
    return surround_silence_flac(path, 600)


@pytest.mark.parametrize(
    ("build", "name", "expected"),
    [
        (_zero_length_wav, "zero.wav", "holds no samples"),
        (_wav_99_channels, "many.wav", "99 channels, more than audio.max_channels (4)"),
        (_surround_silence, "surround.flac", "8 channels, more than audio.max_channels (4)"),
    ],
    ids=["zero-length", "99-channels", "7.1-bomb"],
)
def test_audio_that_cannot_be_analyzed_is_refused_at_upload(
    light_service: Service, tmp_path: Path, build, name: str, expected: str
) -> None:
    path = build(tmp_path / name)
    call_id = f"hostile-{path.stem}"
    with light_service.client() as c:
        resp = c.post(
            "/v1/calls",
            files={"audio": (name, path.read_bytes(), "application/octet-stream")},
            data={"call_id": call_id},
        )
        assert resp.status_code == 422, resp.text
        assert expected in resp.json()["detail"] and resp.json()["detail"].startswith(name)
        assert c.get(f"/v1/calls/{call_id}").status_code == 404
    audio_dir = light_service.tmp / "data" / "audio"
    assert not [p for p in audio_dir.iterdir() if p.stem == call_id or p.name.startswith(".up")]


# --- transcripts: bounded at the door --------------------------------------------------------


def test_an_utterance_longer_than_the_limit_is_refused_naming_record_and_field(
    light_service: Service,
) -> None:
    text = "refund " * (MAX_TEXT_CHARS // 7 * 10)  # 10x the limit, 0.2 MB
    body = {
        "call_id": "hostile-long",
        "utterances": [
            {"channel": 0, "speaker": "customer", "start": 0.0, "end": 1.0, "text": "hello"},
            {"channel": 0, "speaker": "customer", "start": 1.0, "end": 2.0, "text": text},
        ],
    }
    with light_service.client() as c:
        resp = c.post("/v1/calls", json=body)
        assert resp.status_code == 422, resp.text
        (problem,) = resp.json()["problems"]
        assert problem == (
            f"utterances[1]: text: {len(text)} characters, more than one utterance may hold "
            f"(MAX_TEXT_CHARS = {MAX_TEXT_CHARS}); split it into shorter utterances"
        )
        assert c.get("/v1/calls/hostile-long").status_code == 404


# --- the request log -------------------------------------------------------------------------


def test_the_request_log_escapes_what_the_client_wrote(
    light_service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    paths = {
        "/v1/policies/x%0Ay": r"/v1/policies/x\ny",
        "/v1/policies/a%00b%0D%0A2026-01-01 INFO forged": r"/v1/policies/a\x00b\r\n2026-01-01",
        "/v1/policies/%5Cx0a": r"/v1/policies/\\x0a",  # a literal backslash cannot pose as one
    }
    with caplog.at_level(logging.INFO, logger="callsense.http"), light_service.client() as c:
        for path in paths:
            assert c.get(path).status_code in (400, 404)
        deadline = time.monotonic() + 10  # the line is written once the response has gone
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if r.name == "callsense.http"]
            if sum("/v1/policies/" in line for line in lines) >= len(paths):
                break
            time.sleep(0.05)
    logged = [line for line in lines if "/v1/policies/" in line]
    assert len(logged) == len(paths)
    for line, escaped in zip(logged, paths.values(), strict=True):
        assert line.startswith(f"GET {escaped}")
        assert not any(ch in line for ch in "\n\r\x00")


# --- no server paths in answers ---------------------------------------------------------------


def test_policies_are_named_by_file_name_not_by_where_the_server_keeps_them(
    light_service: Service,
) -> None:
    with light_service.client() as c:
        listed = c.get("/v1/policies").json()
        one = c.get("/v1/policies/default")
    assert {p["name"]: p["file"] for p in listed}["default"] == "default.yaml"
    assert one.status_code == 200 and one.json()["file"] == "default.yaml"
    assert str(ROOT) not in one.text and "configs/" not in one.text


@pytest.fixture(scope="module")
def house_service(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[Service]:
    """A service whose one configured policy is a file the test can spoil."""
    tmp = tmp_path_factory.mktemp("service-house")
    policy = tmp / "etc" / "house.yaml"
    policy.parent.mkdir()
    policy.write_text(SHIPPED_POLICY.read_text(encoding="utf-8"), encoding="utf-8")
    cfg = light_config(receiver, policies=[policy])
    with serve(tmp, cfg, load_models=False, max_upload_mb=1.0, scheduler=False) as service:
        yield service


def test_call_errors_and_policy_errors_do_not_show_server_paths(house_service: Service) -> None:
    policy = house_service.tmp / "etc" / "house.yaml"
    utterance = {"channel": 0, "speaker": "customer", "start": 0.0, "end": 1.0, "text": "hi"}
    policy.write_text("policy: house\nrules: [oops\n", encoding="utf-8")  # edited, broken
    with house_service.client() as c:
        resp = c.post("/v1/calls", json={"call_id": "house-1", "utterances": [utterance]})
        assert resp.status_code == 202, resp.text
        failed = house_service.wait_call("house-1")
        assert failed["status"] == "failed"
        assert failed["error"].startswith("ConfigError: house.yaml:3: not valid YAML")
        policy.unlink()  # and then removed
        gone = c.get("/v1/policies/house")
        assert gone.status_code == 422
        assert gone.json()["problems"] == ["house.yaml: cannot read: No such file or directory"]
        listed = c.get("/v1/calls", params={"status": "failed"}).text
    for answer in (str(failed), gone.text, listed):
        assert str(house_service.tmp) not in answer and "/etc/" not in answer


def test_purge_names_the_directories_it_cannot_reach(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/calls.db"
    engine = make_engine(url)
    CallStore(engine).create("far-1", kind="audio", audio_path="callsense-data/audio/far-1.wav")
    gone = tmp_path / "gone"  # another host's directories, say
    record_locations(engine, "gw-far", audio_dir=gone / "audio", cache_dir=gone / "cache")
    result = CliRunner().invoke(cli_app, ["purge", "--call", "far-1", "--db", url])
    assert result.exit_code == 1, result.output
    said = "".join(result.output.split())  # rich wraps long lines
    assert "purged1call(s)" in said and "notreachablefromhere" in said
    for kind, path in (("audiodirectory", gone / "audio"), ("resultcache", gone / "cache")):
        assert f"{kind}{path}(gatewaygw-far)" in said
    assert CallStore(engine).get("far-1") is None  # what it could reach is gone
