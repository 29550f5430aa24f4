"""Recordings through the real service with the keyed test SenseVoice model."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.service.conftest import Service

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
