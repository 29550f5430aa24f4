"""Logs never carry transcript text: full CLI runs with every logger at DEBUG, then a scan.

The texts are made distinctive so that a hit cannot be a coincidence, and each run first
proves the text really went through the pipeline (it is in the output), so the scan of the
logs cannot pass by having nothing to find.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors import cli_transcribe
from callsense.connectors.cli import app
from callsense.core import richtext
from tests.conftest import FSMN_VAD_DIR, ROOT, SENSEVOICE_FILES, TESTDATA

DEFAULT_POLICY = ROOT / "configs" / "policies" / "default.yaml"
# The test model says this for any input (two tokenizer pieces: "斑", "马").
MODEL_SECRET = "斑马"
REPLAY_SECRETS = ("Zanzibar-4921 secret", "卡号泄露测试")

runner = CliRunner()


def _forms(secret: str) -> list[str]:
    """The secret as logs might spell it: plain, JSON-escaped, repr of its UTF-8 bytes."""
    forms = {secret, json.dumps(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1]}
    return sorted(forms)


def _assert_absent(secrets: tuple[str, ...], where: dict[str, str]) -> None:
    for name, captured in where.items():
        for secret in secrets:
            for form in _forms(secret):
                assert form not in captured, f"transcript text {form!r} leaked into {name}"


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record: formatted line, message, raw args and traceback text."""
    parts = [caplog.text]
    for rec in caplog.records:
        parts.append(rec.getMessage())
        parts.append(repr(rec.args))
        if rec.exc_info:
            parts.append(logging.Formatter().formatException(rec.exc_info))
    return "\n".join(parts)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """caplog at DEBUG for every logger, kept alive through the CLI's own logging set-up.

    ``setup_logging`` calls ``basicConfig(force=True)``, which removes caplog's handler from
    the root logger; the wrapper runs the real set-up, then hooks caplog back in at DEBUG.
    """
    real = cli_transcribe.setup_logging

    def setup_and_capture(verbose: bool = False) -> None:
        real(verbose)
        root = logging.getLogger()
        root.addHandler(caplog.handler)
        root.setLevel(logging.DEBUG)

    monkeypatch.setattr(cli_transcribe, "setup_logging", setup_and_capture)
    caplog.set_level(logging.DEBUG)
    yield


@pytest.fixture(scope="session")
def secret_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.make_test_model import build_fixed_model

    out = tmp_path_factory.mktemp("sensevoice-secret")
    return build_fixed_model(
        out, lang="zh", text=MODEL_SECRET, source=SENSEVOICE_FILES, vad_source=FSMN_VAD_DIR
    )


@pytest.mark.model
@pytest.mark.slow
def test_transcribe_logs_no_transcript_text(
    secret_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    debug_logs: None,
) -> None:
    monkeypatch.setenv("CALLSENSE_CACHE_DIR", str(tmp_path / "cache"))  # the cache path runs too
    calls = tmp_path / "calls"
    calls.mkdir()
    shutil.copy(TESTDATA / "speechbrain_spk1_snt1.wav", calls / "a.wav")
    shutil.copy(TESTDATA / "sensevoice-example_zh.mp3", calls / "b.mp3")
    (calls / "c.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)  # error path

    result = runner.invoke(
        app,
        ["transcribe", "--model", str(secret_model_dir), str(calls), "--format", "jsonl", "-v"],
    )
    assert result.exit_code == 1, result.output  # c.wav failed, the others went through
    records = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    texts = [r["text"] for r in records if "text" in r]
    assert texts and all(t == MODEL_SECRET for t in texts), records  # the secret did flow
    assert any(r.get("error") for r in records)
    assert caplog.records, "nothing was logged: the capture is not working"
    assert any(r.levelno == logging.INFO for r in caplog.records)  # -v really logged

    fd = capfd.readouterr()
    _assert_absent(
        (MODEL_SECRET,),
        {"logs": _log_text(caplog), "CLI stderr": result.stderr, "fd 2": fd.err},
    )


def _replay_lines() -> list[str]:
    head = "<|en|><|ANGRY|><|Speech|><|withitn|>"
    lines = [
        {"call_id": "a", "channel": 0, "speaker": "customer", "start": float(t), "end": t + 1.5,
         "raw": head + REPLAY_SECRETS[0]}
        for t in (0, 2, 4)
    ]  # fmt: skip
    lines.append(  # an unknown tag is logged by name: its text must stay out
        {"call_id": "b", "channel": 0, "speaker": "customer", "start": 0.0, "end": 1.0,
         "raw": f"<|zh|><|HAPPY|><|Laughter|><|LOGGUARD_TAG|>{REPLAY_SECRETS[1]}"}
    )  # fmt: skip
    lines.append(  # invalid field: its error names file:line and field, not the text
        {"call_id": "b", "channel": 0, "speaker": "customer", "start": 2.0, "end": 3.0,
         "emotion": "furious", "text": REPLAY_SECRETS[0]}
    )  # fmt: skip
    return [json.dumps(x, ensure_ascii=False) for x in lines]


def test_replay_logs_no_transcript_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # replay has no -v: it configures no logging of its own
    richtext.reset_unknown_tag_counts()  # so the unknown tag is logged in this run
    path = tmp_path / "transcripts.jsonl"
    path.write_text("\n".join(_replay_lines()) + "\n", encoding="utf-8")
    decisions = tmp_path / "decisions.jsonl"

    result = runner.invoke(
        app, ["replay", str(path), "--policy", str(DEFAULT_POLICY), "--out", str(decisions)]
    )
    assert result.exit_code == 1, result.output  # the invalid line was reported
    assert "transcripts.jsonl:5" in result.stderr
    fired = [json.loads(x) for x in decisions.read_text(encoding="utf-8").splitlines()]
    assert {d["rule"] for d in fired} == {"angry-streak", "laughter-satisfaction"}  # text ran
    assert any("LOGGUARD_TAG" in r.getMessage() for r in caplog.records)  # the capture works

    fd = capfd.readouterr()
    _assert_absent(
        REPLAY_SECRETS,
        {"logs": _log_text(caplog), "CLI stderr": result.stderr, "fd 2": fd.err},
    )


@pytest.mark.parametrize("leak", ["said %s", "said %r", "payload %s"])
def test_the_scan_catches_a_leak(leak: str, caplog: pytest.LogCaptureFixture) -> None:
    """The guard itself: a logged text, in any of the forms above, is found."""
    caplog.set_level(logging.DEBUG)
    value = {"text": MODEL_SECRET} if leak.startswith("payload") else MODEL_SECRET
    arg = json.dumps(value) if leak.startswith("payload") else value
    logging.getLogger("callsense.pipeline.transcribe").debug(leak, arg)
    with pytest.raises(AssertionError, match="leaked into logs"):
        _assert_absent((MODEL_SECRET,), {"logs": _log_text(caplog)})
