"""`compliance.emotion: false` switches speech-emotion recognition off everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.configs import shipped
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.cli import app
from callsense.core.errors import ConfigError
from callsense.pipeline.analyze import build_flow
from callsense.pipeline.compliance import ComplianceConfig
from callsense.pipeline.model import Segment
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.recognizer import Recognition
from callsense.pipeline.transcribe import utterance_from

runner = CliRunner()


def _no_ser_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "callsense.yaml"
    cfg.write_text("compliance:\n  emotion: false\n", encoding="utf-8")
    return cfg


def test_policy_check_refuses_emotion_rules_when_ser_is_off(tmp_path: Path) -> None:
    default = str(shipped("policies/default.yaml"))
    ok = runner.invoke(app, ["policy", "check", default])
    assert ok.exit_code == 0, ok.output
    off = runner.invoke(
        app, ["policy", "check", default, "--config", str(_no_ser_config(tmp_path))]
    )
    assert off.exit_code == 1
    assert "default.yaml:11: rules[0].when.emotion: rule 'angry-streak' needs speech-emotion" in (
        off.output
    )


def test_startup_fails_and_emotion_is_null_everywhere() -> None:
    cfg = AppConfig(compliance=ComplianceConfig(emotion=False))
    with pytest.raises(ConfigError, match="needs speech-emotion recognition"):
        build_flow(cfg, with_tts=False)
    heard = utterance_from(
        Segment(channel=0, start=0.0, end=1.0),
        Recognition("<|en|><|ANGRY|><|Speech|><|withitn|>Yes."),
        call_id="c",
        speaker="customer",
        cfg=cfg,
    )
    assert heard.emotion == "ANGRY"  # the model heard it; the session's guard drops it
    utt = PrivacyGuard(cfg)(heard)
    assert utt.emotion is None and utt.confidence.emotion is None
    assert "<|ANGRY|>" in utt.raw  # what the model said stays auditable


def test_agent_emotion_override_needs_and_shows_a_reason() -> None:
    cfg = AppConfig(
        compliance=ComplianceConfig(agent_emotion=True, agent_emotion_reason="safety monitoring")
    )
    utt = PrivacyGuard(cfg)(
        utterance_from(
            Segment(channel=1, start=0.0, end=1.0),
            Recognition("<|en|><|SAD|><|Speech|><|withitn|>Yes."),
            call_id="c",
            speaker="agent",
            cfg=cfg,
        )
    )
    assert utt.emotion == "SAD"
