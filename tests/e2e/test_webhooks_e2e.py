"""analyze/replay with a webhook endpoint: the escalation reaches a real receiver, signed.

Signatures are checked here from the Standard Webhooks spec text, not with the sender's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.cli import app
from tests.connectors.conftest import Receiver
from tests.policy_engines import assert_backend, config_text, matchers_built

runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.stop()


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks v1: HMAC-SHA256 over "{id}.{timestamp}.{body}", base64, 'v1,' prefix."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id, ts = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(time.time() - int(ts)) < 300
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    offered = [
        s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, sig) for sig in offered)


def _config(tmp_path: Path, url: str, secret: str, policy_engine: str) -> Path:
    cfg = tmp_path / "callsense.yaml"
    cfg.write_text(
        config_text(policy_engine) + "webhooks:\n"
        "  - name: tickets\n"
        f"    url: {url}/hook\n"
        f"    secret: {secret}\n"
        "    actions: [escalate]\n"
        "outbox:\n"
        f"  db_url: sqlite:///{tmp_path / 'outbox.db'}\n",
        encoding="utf-8",
    )
    return cfg


def _escalations(receiver: Receiver, secret: str) -> list[dict]:
    out = []
    for req in receiver.requests:
        lowered = {k.lower(): v for k, v in req.headers.items()}
        assert verify(secret, lowered, req.body), "signature does not verify"
        out.append(json.loads(req.body))
    return out


def test_replay_delivers_the_default_escalation_signed(
    receiver: Receiver, tmp_path: Path, policy_engine: str
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    transcript = tmp_path / "calls.jsonl"
    lines = []
    for i, (speaker, emo) in enumerate(
        [("customer", "ANGRY"), ("agent", "NEUTRAL"), ("customer", "ANGRY"), ("customer", "ANGRY")]
    ):
        raw = f"<|en|><|{emo}|><|Speech|><|withitn|>Turn {i}."
        lines.append(
            json.dumps(
                {
                    "call_id": "c-1",
                    "channel": 0 if speaker == "customer" else 1,
                    "speaker": speaker,
                    "start": 2.0 * i,
                    "end": 2.0 * i + 1.5,
                    "raw": raw,
                }
            )
        )
    transcript.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = _config(tmp_path, receiver.url, secret, policy_engine)
    with matchers_built() as matchers:
        result = runner.invoke(app, ["replay", str(transcript), "--config", str(config)])
    assert result.exit_code == 0, result.output
    (matcher,) = matchers  # replay closes its engine: the backend's class is what is left
    assert_backend(matcher, policy_engine, used=False)
    payloads = _escalations(receiver, secret)
    assert len(payloads) == 1
    body = json.dumps(payloads[0])
    assert "angry-streak" in body and "c-1" in body
    assert re.search(r"webhooks: 1 delivered, 0 retries scheduled, 0 dead-lettered", result.output)
    assert "0 still pending" in result.output


@pytest.mark.model
def test_analyze_delivers_the_escalation_signed(
    receiver: Receiver, tmp_path: Path, keyed_model_dir: Path, angry_call, policy_engine: str
) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    path, _ = angry_call
    config = _config(tmp_path, receiver.url, secret, policy_engine)
    with matchers_built() as matchers:
        result = runner.invoke(
            app,
            [
                "analyze",
                "-m",
                str(keyed_model_dir),
                str(path),
                "-o",
                str(tmp_path / "out"),
                "--no-tts",
                "--no-cache",
                "--config",
                str(config),
            ],
        )
    assert result.exit_code == 0, result.output
    (matcher,) = matchers
    assert_backend(matcher, policy_engine)
    payloads = _escalations(receiver, secret)
    assert len(payloads) == 1 and "angry-streak" in json.dumps(payloads[0])
