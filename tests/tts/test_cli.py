"""``callsense tts say`` end to end: real engines, a real file, real ffprobe."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from callsense.connectors import cli_tts
from tests.tts.conftest import plausible_seconds, probe


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> typer.Typer:
    monkeypatch.setenv("CALLSENSE_CACHE_DIR", str(tmp_path / "cache"))
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """callsense (test root)."""

    cli_tts.register(app)
    return app


def test_say_writes_a_16k_wav_with_the_offline_voice(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "reply.wav"
    text = "Thank you for calling, goodbye."
    res = CliRunner().invoke(app, ["tts", "say", text, "--out", str(out), "--engine", "piper"])
    assert res.exit_code == 0, res.output
    assert "engine piper, voice en_US-joe-medium, synthesized" in res.output
    info = probe(out)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_s16le", 16000, 1)
    low, high = plausible_seconds(text, "en")
    assert low <= info["duration"] <= high
    again = CliRunner().invoke(app, ["tts", "say", text, "--out", str(out), "--engine", "piper"])
    assert "cache)" in again.output
    assert list((tmp_path / "cache" / "tts").rglob("*.wav"))


def test_say_telephony_zh_falls_back_from_edge(app: typer.Typer, tmp_path: Path) -> None:
    cfg = tmp_path / "tts.yaml"
    cfg.write_text(
        "engines:\n"
        "  - engine: edge\n    proxy: http://127.0.0.1:9\n    timeout_s: 2\n"
        "  - espeak\n"
        "cache:\n  enabled: false\n",
        encoding="utf-8",
    )
    out = tmp_path / "phone.wav"
    res = CliRunner().invoke(
        app,
        ["tts", "say", "您好，请稍等。", "--lang", "zh", "--telephony", "--config", str(cfg),
         "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "fell back: edge:" in res.output
    assert "engine espeak, voice cmn" in res.output
    info = probe(out)
    assert (info["codec"], info["rate"], info["channels"]) == ("pcm_mulaw", 8000, 1)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["  ", "--engine", "espeak"], "reply text is empty"),
        (["bonjour", "--lang", "fr", "--engine", "espeak"], "no TTS voice for language 'fr'"),
        (["hi", "--engine", "festival"], "unknown engine 'festival'"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    app: typer.Typer, tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "never.wav"
    res = CliRunner().invoke(app, ["tts", "say", *args, "--out", str(out)])
    assert res.exit_code == 2
    assert message in " ".join(res.output.split())
    assert not out.exists()


def test_bad_config_file_exits_2_naming_the_line(app: typer.Typer, tmp_path: Path) -> None:
    cfg = tmp_path / "tts.yaml"
    cfg.write_text("engines:\n  - engine: espeak\n    speed_wpm: 9000\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["tts", "say", "hi", "--config", str(cfg)])
    assert res.exit_code == 2
    assert re.search(r"tts\.yaml:[23]: engines\[0\]\.(espeak\.)?speed_wpm: .*450", res.output)
