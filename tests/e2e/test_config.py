"""The shipped main config is valid and says what the built-in defaults are."""

from __future__ import annotations

from pathlib import Path

import pytest

from configs import shipped
from connectors.appconfig import AppConfig, load_app_config
from rules.errors import ConfigError


def test_shipped_config_equals_the_defaults() -> None:
    loaded = load_app_config(shipped("callsense.yaml"))
    defaults = AppConfig()
    assert [p.resolve() for p in loaded.policies] == [p.resolve() for p in defaults.policies]
    assert loaded.intents.resolve() == defaults.intents.resolve()
    dump = {"exclude": {"policies", "intents", "dialogue"}}
    assert loaded.model_dump(**dump) == defaults.model_dump(**dump)


def test_agent_emotion_needs_a_reason(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("compliance:\n  agent_emotion: true\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_app_config(cfg)
    assert f"{cfg}:1: compliance: agent_emotion: true needs agent_emotion_reason" in str(err.value)


def test_unknown_key_and_duplicate_webhook_names(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("vad:\n  engin: fsmn\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml:2: vad\.engin: unknown field"):
        load_app_config(cfg)
    secret = "whsec_" + "A" * 32
    cfg.write_text(
        "webhooks:\n"
        f"  - {{name: t, url: 'http://127.0.0.1:9/h', secret: {secret}}}\n"
        f"  - {{name: t, url: 'http://127.0.0.1:9/h', secret: {secret}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="unique"):
        load_app_config(cfg)
