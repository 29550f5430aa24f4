"""The shipped main config is valid and says what the built-in defaults are."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.configs import shipped
from callsense.connectors.appconfig import AppConfig, load_app_config
from callsense.core.errors import ConfigError


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


def test_relative_file_keys_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve -c /etc/callsense/callsense.yaml` from any directory finds the files the
    config names next to it."""
    import shutil

    from callsense.connectors.templates import BUILTIN_DIR

    etc = tmp_path / "etc"
    (etc / "tpl").mkdir(parents=True)
    shutil.copy(BUILTIN_DIR / "generic.yaml", etc / "tpl" / "mine.yaml")
    (etc / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    config = etc / "callsense.yaml"
    config.write_text(
        "cache: {dir: cache}\n"
        "tts:\n  engines:\n    - {engine: piper, voice_dirs: [voices, /opt/voices]}\n"
        "webhooks:\n"
        "  - name: t\n    url: https://tickets.example.com/h\n"
        "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
        "    template: tpl/mine.yaml\n    ca_file: ca.pem\n"
        "  - name: z\n    url: https://z.example.com/h\n"
        "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n    template: zendesk\n"
        "outbox: {db_url: 'sqlite:///data/callsense.db'}\n",
        encoding="utf-8",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_app_config(config)
    assert cfg.cache.dir == etc / "cache"
    assert cfg.tts.engines[0].voice_dirs == [etc / "voices", Path("/opt/voices")]
    mine, zendesk = cfg.webhooks
    assert Path(mine.template) == etc / "tpl" / "mine.yaml"
    assert mine.ca_file == etc / "ca.pem"
    assert zendesk.template == "zendesk"  # a built-in name stays a name
    assert cfg.outbox.db_url == f"sqlite:///{etc}/data/callsense.db"
    assert mine.compiled_template.spec.content_type  # the file loads from here


def test_numbers_must_be_finite_everywhere(tmp_path: Path) -> None:
    """``1e999999`` is infinity to ``float()`` and ``.inf`` a float to YAML: either makes a
    limit no limit, so every float of the config is checked (issue 19)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "retention:\n  days: .inf\n  interval_s: 1e999999\n"
        "segmentation:\n  max_utterance_s: .inf\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_app_config(cfg)
    assert err.value.problems == [
        f"{cfg}:2: retention.days: must be a finite number (got inf)",
        f"{cfg}:3: retention.interval_s: must be a finite number (got inf)",
        f"{cfg}:5: segmentation.max_utterance_s: must be a finite number (got inf)",
    ]
