"""Recordings through the real service with the keyed test SenseVoice model."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.cli import app as cli_app
from callsense.pipeline.config import CacheConfig, load_config
from tests.conftest import TESTDATA
from tests.service.conftest import Service, serve

pytestmark = [pytest.mark.model, pytest.mark.slow]


def test_readyz_reports_the_loaded_model(model_service: Service) -> None:
    with model_service.client(key=None) as c:
        body = c.get("/readyz").json()
    assert body == {
        "ready": True,
        "models": "loaded",
        "recognizer": "loaded",
        "database": "ok",
        "draining": False,
    }


def test_a_posted_recording_escalates_at_the_third_angry_customer_turn(
    model_service: Service, angry_call
) -> None:
    path, timeline = angry_call
    with model_service.client() as c:
        resp = c.post(
            "/v1/calls",
            files={"audio": (path.name, path.read_bytes(), "audio/wav")},
            data={"language": "en", "call_id": "angry-1"},
        )
        assert resp.status_code == 202, resp.text
    body = model_service.wait_call("angry-1")
    assert body["status"] == "done", body
    assert body["kind"] == "audio" and body["language"] == "en" and body["source"] == path.name
    customer = [u for u in body["utterances"] if u["speaker"] == "customer"]
    assert len(customer) == 3 and all(u["emotion"] == "ANGRY" for u in customer)
    (esc,) = [d for d in body["decisions"] if d["action"] == "escalate"]
    third = [t for t in timeline if t.speaker == "customer"][2]
    assert esc["rule"] == "angry-streak" and esc["params"]["priority"] == "high"
    assert third.start < esc["at"] <= third.end + 0.5
    assert esc["at"] == customer[2]["end"]
    assert body["summary"]["escalated"] and body["duration_s"] == pytest.approx(
        timeline[-1].end + 1.7, abs=0.3
    )
    # the transcript went to the result cache; DELETE removes it with the audio
    cache = model_service.tmp / "cache"
    owners = [json.loads(p.read_text().splitlines()[0])["call_id"] for p in cache.rglob("*.jsonl")]
    assert owners == ["angry-1"]
    audio = Path(model_service.tmp / "data" / "audio" / "angry-1.wav")
    assert audio.is_file()
    with model_service.client() as c:
        assert c.delete("/v1/calls/angry-1").status_code == 200
        assert c.get("/v1/calls/angry-1").status_code == 404
    assert not audio.exists() and list(cache.rglob("*.jsonl")) == []


def test_gradio_predict_route_answers_like_the_seed_webui(
    model_service: Service, angry_call
) -> None:
    path, _ = angry_call
    blob = path.read_bytes()
    with model_service.client() as c:
        multipart = c.post(
            "/api/predict", files={"audio": ("call.wav", blob)}, data={"language": "auto"}
        )
        assert multipart.status_code == 200, multipart.text
        url = "data:audio/wav;base64," + base64.b64encode(blob).decode()
        gradio = c.post(
            "/api/predict", json={"data": [{"name": "call.wav", "data": url}, "en"], "fn_index": 0}
        )
        plain = c.post("/api/predict", json={"data": [url, "en"]})
        for resp in (multipart, gradio, plain):
            assert resp.status_code == 200, resp.text
            (text,) = resp.json()["data"]
            assert text.count("Yes.😡") == 3  # the three angry customer turns, emoji as the seed
        assert gradio.json()["is_generating"] is False
        bad = c.post("/api/predict", json={"data": [{"path": "/etc/passwd"}, "en"]})
        assert bad.status_code == 422
        remote = c.post("/api/predict", json={"data": ["https://example.com/a.wav", "en"]})
        assert remote.status_code == 422 and "no remote" in remote.json()["detail"]
        lang = c.post("/api/predict", json={"data": [url, "klingon"]})
        assert lang.status_code == 422


# --- what a failed or purged recording leaves (issue 19) -------------------------------------


def test_a_failed_recording_names_its_file_but_not_the_servers_directories(
    model_service: Service,
) -> None:
    whole = (TESTDATA / "ravdess_03-01-01-01-01-01-01.wav").read_bytes()
    cut = whole[: len(whole) // 2 + 1]  # its header still declares the whole length
    with model_service.client() as c:
        resp = c.post("/v1/calls", files={"audio": ("cut.wav", cut)}, data={"call_id": "cut-1"})
        assert resp.status_code == 202, resp.text
    failed = model_service.wait_call("cut-1")
    assert failed["status"] == "failed"
    assert failed["error"].startswith("TruncatedAudioError: cut-1.wav: the header declares")
    assert str(model_service.tmp) not in failed["error"]


def test_a_fault_of_the_server_fails_the_call_in_plain_words_and_logs_where(
    tmp_path: Path, keyed_model_dir: Path, angry_call, caplog: pytest.LogCaptureFixture
) -> None:
    """Not the call's fault but the server's (its result cache is a file, so reading an
    entry raises NotADirectoryError with the server's path in its message): the call says
    what happened without the message, the log says where without it."""
    cache = tmp_path / "cache"
    cache.write_text("not a directory\n", encoding="utf-8")
    base = load_config(None, model=str(keyed_model_dir), schema=AppConfig, environ={})
    cfg = base.model_copy(update={"cache": CacheConfig(enabled=True, dir=cache)})
    path, _ = angry_call
    runtime_log = "callsense.connectors.runtime"
    with (
        caplog.at_level(logging.WARNING, logger=runtime_log),
        serve(tmp_path, cfg, load_models=True, scheduler=False) as service,
        service.client() as c,
    ):
        resp = c.post("/v1/calls", files={"audio": (path.name, path.read_bytes())},
                      data={"call_id": "fault-1", "language": "en"})  # fmt: skip
        assert resp.status_code == 202, resp.text
        failed = service.wait_call("fault-1")
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "internal error (NotADirectoryError) while analyzing the call; see the server log"
    )
    (logged,) = [r for r in caplog.records if r.name == runtime_log and "fault-1" in r.getMessage()]
    assert logged.levelno == logging.ERROR and logged.exc_info is None
    assert "builtins.NotADirectoryError, raised at" in logged.getMessage()
    assert "pipeline/cache.py" in logged.getMessage()  # the frames
    assert str(cache) not in logged.getMessage()  # not the message


def test_purge_run_from_another_shell_removes_the_servers_cached_transcript(
    model_service: Service,
    angry_call,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, _ = angry_call
    with model_service.client() as c:
        resp = c.post(
            "/v1/calls",
            files={"audio": (path.name, path.read_bytes())},
            data={"call_id": "purge-away", "language": "en"},
        )
        assert resp.status_code == 202, resp.text
    assert model_service.wait_call("purge-away")["status"] == "done"
    cache = model_service.tmp / "cache"

    def cached() -> list[str]:
        return [
            json.loads(p.read_text().splitlines()[0])["call_id"] for p in cache.rglob("*.jsonl")
        ]

    assert "purge-away" in cached()
    # another directory, another home and no config: nothing says where the server keeps files
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("HOME", str(elsewhere))
    for var in ("CALLSENSE_CACHE_DIR", "XDG_CACHE_HOME", "CALLSENSE_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    db = str(model_service.runtime.engine.url)
    result = CliRunner().invoke(cli_app, ["purge", "--call", "purge-away", "--db", db])
    assert result.exit_code == 0, result.output
    assert "purge-away" not in cached()
    assert not (model_service.tmp / "data" / "audio" / "purge-away.wav").exists()
