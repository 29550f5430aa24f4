"""The HTTP API on a real uvicorn server, transcripts only (no recognizer needed)."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.outbox_rows import decisions_table, outbox_table
from callsense.connectors.webhooks import WebhookEndpoint
from callsense.pipeline.config import CacheConfig
from tests.policy_engines import assert_backend
from tests.service.conftest import SECRET, Service, policy_matcher, serve, webhook_receiver

PUBLIC = {"/healthz", "/readyz"}

ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>This is absurd, I want a refund."
CALM = "<|en|><|NEUTRAL|><|Speech|><|withitn|>Thank you for waiting."


def utterances(call_id: str, emotions: list[str]) -> list[dict[str, Any]]:
    """Customer turns 2 s long, an agent turn between each (records in transcribe shape)."""
    out: list[dict[str, Any]] = []
    t = 0.0
    for emotion in emotions:
        raw = ANGRY if emotion == "ANGRY" else CALM
        out.append(
            {
                "call_id": call_id,
                "channel": 0,
                "speaker": "customer",
                "start": t,
                "end": t + 2.0,
                "raw": raw,
            }
        )
        out.append(
            {
                "call_id": call_id,
                "channel": 1,
                "speaker": "agent",
                "start": t + 2.1,
                "end": t + 3.0,
                "raw": CALM,
            }
        )
        t += 3.0
    return out


def post_transcript(
    svc: Service, call_id: str, emotions: list[str], **extra: Any
) -> httpx.Response:
    with svc.client() as c:
        return c.post(
            "/v1/calls",
            json={"call_id": call_id, "utterances": utterances(call_id, emotions), **extra},
        )


def test_every_protected_route_refuses_a_missing_wrong_or_revoked_key(
    light_service: Service,
) -> None:
    app_routes = [
        (m, p)
        for m, p in _routes(light_service)
        if p.startswith(("/v1/", "/api/")) or p == "/metrics"
    ]
    paths = {p for _, p in app_routes}
    assert {
        "/v1/calls",
        "/v1/calls/{call_id}",
        "/v1/policies/{name}",
        "/v1/policies/diff",
        "/v1/webhooks/failed",
        "/api/predict",
        "/metrics",
    } <= paths
    revoked = light_service.runtime.keys.create("revoked-later")
    assert light_service.runtime.keys.revoke("revoked-later")
    for key in (None, "csk_000000000000_" + "x" * 43, revoked, "Bearer"):
        with light_service.client(key=key) as c:
            for method, path in app_routes:
                url = path.replace("{call_id}", "c1").replace("{name}", "default")
                url = url.replace("{webhook_id}", "msg_1")
                resp = c.request(method, url)
                assert resp.status_code == 401, (method, url, key, resp.text)
                assert resp.headers["content-type"] == "application/problem+json"
                assert resp.headers["www-authenticate"] == "Bearer"
    with light_service.client(key=None) as c:
        for path in PUBLIC:
            assert c.get(path).status_code == 200
        # X-API-Key works as well as a bearer token
        assert c.get("/v1/calls", headers={"X-API-Key": light_service.key}).status_code == 200


def _routes(svc: Service) -> list[tuple[str, str]]:
    """(method, path) of every documented route of the running app."""
    paths = svc.app.openapi()["paths"]
    return [(m.upper(), p) for p, ops in paths.items() for m in ops]


def test_a_posted_transcript_escalates_at_the_third_angry_turn(
    engine_service: Service, policy_engine: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = post_transcript(engine_service, "tx-angry", ["ANGRY", "ANGRY", "ANGRY"])
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"id": "tx-angry", "status": "queued"}
    body = engine_service.wait_call("tx-angry")
    assert body["status"] == "done", body
    assert body["kind"] == "transcript" and body["policy"] == "default"
    assert len(body["utterances"]) == 6 and body["utterance_count"] == 6
    assert body["utterances"][0]["emotion"] == "ANGRY"
    (esc,) = [d for d in body["decisions"] if d["action"] == "escalate"]
    assert esc["rule"] == "angry-streak" and esc["params"]["priority"] == "high"
    assert esc["at"] == 8.0  # end of the third customer turn (6.0 + 2.0)
    assert [e["seq"] for e in esc["evidence"]] == [0, 2, 4]
    assert body["escalated"] is True and body["summary"]["escalated"] is True
    assert body["summary"]["top_priority"] == "high"
    assert any(r["template"] for r in body["replies"])  # the dialogue answered
    assert_backend(policy_matcher(engine_service), policy_engine)  # the configured one decided
    # never log transcript text
    assert "absurd" not in caplog.text and "Thank you for waiting" not in caplog.text
    assert "tx-angry" in caplog.text


def test_invalid_transcripts_get_problem_details_naming_the_record(light_service: Service) -> None:
    bad = utterances("tx-bad", ["ANGRY"])
    bad[1] = {**bad[1], "end": -1.0}
    bad[0] = {**bad[0], "emotion": "angry"}
    with light_service.client() as c:
        resp = c.post("/v1/calls", json={"call_id": "tx-bad", "utterances": bad})
        assert resp.status_code == 422
        assert resp.headers["content-type"] == "application/problem+json"
        problems = resp.json()["problems"]
        assert problems[0].startswith("utterances[0]: emotion: 'angry' is not a SenseVoice emotion")
        assert problems[1].startswith("utterances[1]: end:")
        assert c.get("/v1/calls/tx-bad").status_code == 404  # nothing was stored
        resp = c.post("/v1/calls", json={"utterances": [], "surprise": 1})
        assert resp.status_code == 422 and "surprise" in resp.text
        resp = c.post(
            "/v1/calls", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert resp.status_code == 422
        resp = c.post("/v1/calls", content=b"abc", headers={"content-type": "text/csv"})
        assert resp.status_code == 415
    assert post_transcript(light_service, "tx-dup", ["CALM"]).status_code == 202
    assert post_transcript(light_service, "tx-dup", ["CALM"]).status_code == 409


def test_list_filters_and_pages(light_service: Service) -> None:
    ids = {f"page-{i}": ["ANGRY"] * 3 if i % 2 else ["CALM"] for i in range(5)}
    for call_id, emotions in ids.items():
        assert post_transcript(light_service, call_id, emotions).status_code == 202
    for call_id in ids:
        assert light_service.wait_call(call_id)["status"] == "done"
    with light_service.client() as c:
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = c.get("/v1/calls", params=params).json()
            assert len(page["items"]) <= 2
            seen.extend(item["id"] for item in page["items"])
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) and set(ids) <= set(seen) and pages >= 3
        created = [c.get(f"/v1/calls/{i}").json()["created_at"] for i in seen]
        assert created == sorted(created, reverse=True)
        escalated = {
            i["id"]
            for i in c.get("/v1/calls", params={"escalated": "true", "limit": 500}).json()["items"]
        }
        calm = {
            i["id"]
            for i in c.get("/v1/calls", params={"escalated": "false", "limit": 500}).json()["items"]
        }
        assert {"page-1", "page-3"} <= escalated and not {"page-0", "page-2", "page-4"} & escalated
        assert {"page-0", "page-2", "page-4"} <= calm and not escalated & calm
        future = time.time() + 3600
        assert c.get("/v1/calls", params={"since": future}).json()["items"] == []
        assert len(c.get("/v1/calls", params={"until": future, "limit": 500}).json()["items"]) >= 5
        assert c.get("/v1/calls", params={"policy": "nosuch"}).json()["items"] == []
        by_default = c.get("/v1/calls", params={"policy": "default", "limit": 500}).json()["items"]
        assert set(ids) <= {i["id"] for i in by_default}
        assert c.get("/v1/calls", params={"cursor": "!!"}).status_code == 400
        assert c.get("/v1/calls", params={"limit": 0}).status_code == 422


def test_delete_removes_rows_audio_and_delivered_webhooks(
    light_service: Service, receiver: Any
) -> None:
    svc = light_service
    assert post_transcript(svc, "tx-del", ["ANGRY"] * 3).status_code == 202
    assert svc.wait_call("tx-del")["status"] == "done"
    engine = svc.runtime.engine
    o, d = outbox_table, decisions_table
    ids = select(d.c.id).where(d.c.call_id == "tx-del").scalar_subquery()

    def outbox_rows() -> dict[str, str]:
        with engine.connect() as conn:
            return {
                r.endpoint: r.status
                for r in conn.execute(
                    select(o.c.endpoint, o.c.status).where(o.c.decision_id.in_(ids))
                )
            }

    deadline = time.monotonic() + 20
    while (
        outbox_rows() != {"good": "delivered", "refusing": "dead"} and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert outbox_rows() == {"good": "delivered", "refusing": "dead"}
    # an uploaded recording is kept on disk until its call is deleted
    with svc.client() as c:
        wav = _wav_bytes(1.0)
        resp = c.post(
            "/v1/calls",
            files={"audio": ("../../evil name.wav", wav, "audio/wav")},
            data={"call_id": "au-del", "language": "en"},
        )
        assert resp.status_code == 202, resp.text
        failed = svc.wait_call("au-del")
        assert failed["status"] == "failed" and "disabled" in failed["error"]
        audio = svc.tmp / "data" / "audio" / "au-del.wav"
        assert audio.is_file() and audio.read_bytes() == wav
        assert not list((svc.tmp / "data").glob("*.wav"))  # the client's name is never a path
        for call_id in ("tx-del", "au-del"):
            resp = c.delete(f"/v1/calls/{call_id}")
            assert resp.status_code == 200 and resp.json() == {"id": call_id, "deleted": True}
            assert c.get(f"/v1/calls/{call_id}").status_code == 404
            assert c.delete(f"/v1/calls/{call_id}").status_code == 404
        assert not audio.exists()
    assert outbox_rows() == {"refusing": "dead"}  # dead letters wait for an operator
    with engine.connect() as conn:
        from callsense.connectors.calls_tables import call_utterances_table

        u = call_utterances_table
        assert conn.execute(select(u).where(u.c.call_id == "tx-del")).first() is None
        # only the decision the dead letter still refers to is kept, for the operator
        kept = conn.execute(select(d.c.id).where(d.c.call_id == "tx-del")).scalars().all()
        owed = conn.execute(select(o.c.decision_id).where(o.c.status == "dead")).scalars().all()
        assert kept and set(kept) <= set(owed)


def test_a_webhook_that_does_not_verify_fails_the_receiver_check(tmp_path: Path) -> None:
    """The service tests' receiver bites: a service that signs with another secret than the
    receiver verifies with is refused (401, dead-lettered), nothing reaches ``received``,
    and the check run after every service test fails; so does an unsigned request."""
    other = "whsec_" + base64.b64encode(b"o" * 32).decode()
    with webhook_receiver(SECRET) as box:
        cfg = AppConfig(
            cache=CacheConfig(enabled=False),
            webhooks=[
                WebhookEndpoint(
                    name="good", url=f"{box.base_url}/ok", secret=other, actions=["escalate"]
                )
            ],
        )
        # no scheduler: there is one per process, and light_service's SLA tests use it
        with serve(tmp_path, cfg, load_models=False, scheduler=False) as svc:
            assert post_transcript(svc, "wrong-secret", ["ANGRY"] * 3).status_code == 202
            assert svc.wait_call("wrong-secret")["status"] == "done"
            deadline = time.monotonic() + 20
            dead: list[dict[str, Any]] = []
            with svc.client() as c:
                while not dead and time.monotonic() < deadline:
                    failed = c.get("/v1/webhooks/failed").json()
                    dead = [m for m in failed if m["call_id"] == "wrong-secret"]
                    time.sleep(0.1)
        assert [(m["endpoint"], m["last_status"]) for m in dead] == [("good", 401)]
        assert box.received == []
        assert [(r["path"], r["error"]) for r in box.rejected] == [
            ("/ok", "No matching signature found")
        ]
        with pytest.raises(AssertionError, match="does not verify with the service's secret"):
            box.assert_all_verified()

        body = json.dumps({"call_id": "unsigned", "action": "escalate"}).encode()
        assert httpx.post(f"{box.base_url}/ok", content=body).status_code == 401
        with pytest.raises(AssertionError, match="Missing required headers"):
            box.assert_all_verified()
        # the same request signed with the receiver's secret is taken: the check is the secret
        now = datetime.now(UTC)
        signed = {
            "webhook-id": "msg_control",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(SECRET).sign("msg_control", now, body),
        }
        assert httpx.post(f"{box.base_url}/ok", content=body, headers=signed).status_code == 204
        assert [r["payload"] for r in box.received] == [json.loads(body)]
        box.assert_all_verified()


def _wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    import io
    import wave

    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def test_uploads_that_are_not_audio_or_too_big_are_refused(light_service: Service) -> None:
    with light_service.client() as c:
        resp = c.post(
            "/v1/calls", files={"audio": ("x.wav", b"RIFF" + bytes(range(200)), "audio/wav")}
        )
        assert resp.status_code == 422 and "no audio stream" in resp.json()["detail"]
        resp = c.post("/v1/calls", files={"audio": ("x.wav", b"", "audio/wav")})
        assert resp.status_code == 422
        resp = c.post(
            "/v1/calls", files={"audio": ("x.wav", _wav_bytes(0.5))}, data={"language": "xx"}
        )
        assert resp.status_code == 422 and "language" in resp.json()["detail"]
        resp = c.post(
            "/v1/calls", files={"audio": ("x.wav", _wav_bytes(0.5))}, data={"call_id": "../etc"}
        )
        assert resp.status_code == 422
        resp = c.post(
            "/v1/calls", files={"audio": ("x.wav", _wav_bytes(0.5))}, data={"policy": "nope"}
        )
        assert resp.status_code == 404
    leftovers = [
        p for p in (light_service.tmp / "data" / "audio").iterdir() if p.name.startswith(".upload")
    ]
    assert leftovers == []


def test_an_oversized_upload_is_refused_while_streaming_and_others_are_served(
    light_service: Service,
) -> None:
    limit = light_service.runtime.settings.max_upload_bytes
    sent = 0
    healthz: list[int] = []

    def body():  # chunked: no Content-Length, so the server must count as it reads
        nonlocal sent
        boundary = b"--b0undary"
        yield (
            boundary
            + b'\r\nContent-Disposition: form-data; name="audio"; filename="big.wav"\r\n\r\n'
        )
        chunk = b"\0" * 65536
        while sent < 4 * limit:
            sent += len(chunk)
            if sent == 8 * 65536:  # mid-upload, another client is served
                with httpx.Client(base_url=light_service.base_url) as other:
                    healthz.append(other.get("/healthz").status_code)
            yield chunk
        yield b"\r\n" + boundary + b"--\r\n"

    status = None
    with light_service.client() as c:
        try:
            resp = c.post(
                "/v1/calls",
                content=body(),
                headers={"content-type": "multipart/form-data; boundary=b0undary"},
            )
            status = resp.status_code
            assert resp.json()["title"] == "Payload Too Large"
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            status = "closed"  # the server stopped reading; some clients see a broken pipe
    assert status in (413, "closed")
    assert healthz == [200]
    # a raw client that sends 1.5x the limit and then stalls gets its 413 anyway: the server
    # refused while the body was streaming, not after waiting for all of it
    host, port = light_service.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(
            b"POST /v1/calls HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {light_service.key}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n"
        )
        head = (
            b'--b0undary\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"\1" * 65536
        for _ in range(int(1.5 * limit) // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")
    with light_service.client() as c:
        resp = c.post("/v1/calls", files={"audio": ("big.wav", b"\0" * (limit + 70000))})
        assert resp.status_code == 413  # Content-Length says so: refused before reading
        assert c.get("/v1/calls").status_code == 200
    leftovers = [
        p for p in (light_service.tmp / "data" / "audio").iterdir() if p.name.startswith(".upload")
    ]
    assert leftovers == []


def test_request_ids_are_returned(light_service: Service) -> None:
    with light_service.client(key=None) as c:
        made = c.get("/healthz").headers["x-request-id"]
        assert len(made) == 32
        assert (
            c.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
            == "abc-123"
        )
        assert (
            c.get("/healthz", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
            != "bad id!"
        )
