"""``callsense analyze`` end to end on a stereo call built from real recordings."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.cli import app
from tests.policy_engines import assert_backend, config_text, matchers_built

pytestmark = pytest.mark.model

runner = CliRunner()


def _ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout)["format"]["duration"])


@pytest.fixture(scope="module")
def analyzed(
    keyed_model_dir: Path,
    angry_call,
    tmp_path_factory: pytest.TempPathFactory,
    policy_engine: str,
):
    """The call analyzed with the config's ``policy_engine`` set to each rules backend."""
    path, timeline = angry_call
    tmp = tmp_path_factory.mktemp(f"analyze-{policy_engine}")
    config, out = tmp / "callsense.yaml", tmp / "out"
    config.write_text(config_text(policy_engine), encoding="utf-8")
    with matchers_built() as matchers:
        result = runner.invoke(
            app,
            [
                "analyze",
                "--model",
                str(keyed_model_dir),
                str(path),
                "--out",
                str(out),
                "--no-cache",
                "--config",
                str(config),
            ],
        )
    assert result.exit_code == 0, result.output
    (call_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return call_dir, timeline, result.output, matchers


def test_escalates_at_the_end_of_the_third_angry_customer_utterance(
    analyzed, policy_engine: str
) -> None:
    call_dir, timeline, _, matchers = analyzed
    (matcher,) = matchers  # the one engine analyze built decided, on the configured backend
    assert_backend(matcher, policy_engine)
    decisions = [json.loads(x) for x in (call_dir / "decisions.jsonl").read_text().splitlines()]
    escalations = [d for d in decisions if d["action"] == "escalate"]
    assert len(escalations) == 1
    esc = escalations[0]
    assert (esc["rule"], esc["params"]["priority"]) == ("angry-streak", "high")
    third_angry = [t for t in timeline if t.speaker == "customer"][2]
    # `at` is the end of the utterance that completed the streak: inside the third turn
    assert third_angry.start < esc["at"] <= third_angry.end + 0.5
    assert len(esc["evidence"]) == 3
    assert all(e["speaker"] == "customer" and e["emotion"] == "ANGRY" for e in esc["evidence"])
    utterances = [json.loads(x) for x in (call_dir / "utterances.jsonl").read_text().splitlines()]
    ends = {u["end"] for u in utterances if u["speaker"] == "customer"}
    assert esc["at"] in ends


def test_dialogue_deescalates_and_hands_off_with_real_audio(analyzed) -> None:
    call_dir, _, _, _ = analyzed
    replies = [json.loads(x) for x in (call_dir / "replies.jsonl").read_text().splitlines()]
    templates = [r["template"] for r in replies]
    assert "deescalate" in templates and "handoff" in templates
    deesc = next(r for r in replies if r["template"] == "deescalate")
    wav = call_dir / deesc["audio"]
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,sample_rate,channels",
            "-of",
            "json",
            str(wav),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(probe.stdout)["streams"][0]
    assert (stream["codec_name"], stream["sample_rate"], stream["channels"]) == (
        "pcm_s16le",
        "16000",
        1,
    )
    words = len(deesc["text"].split())
    duration = _ffprobe_duration(wav)
    # a spoken sentence: roughly 0.15-1.0 s per word
    assert 0.15 * words <= duration <= 1.0 * words + 1.0


def test_summary_counts_the_call(analyzed) -> None:
    call_dir, _timeline, output, _ = analyzed
    summary = json.loads((call_dir / "summary.json").read_text())
    assert summary["escalated"] is True and summary["top_priority"] == "high"
    assert summary["talk_time_s"]["customer"] > 3.0 and summary["talk_time_s"]["agent"] > 1.0
    assert summary["languages_s"].get("en", 0) > 0
    assert "agent:NEUTRAL" not in summary["emotions"]  # no emotion on agents by default
    assert summary["emotions"]["customer:ANGRY"] >= 3
    assert summary["errors"] == []
    assert "1 escalated" in output


def test_a_broken_call_gets_an_error_summary_and_the_batch_goes_on(
    fixed_model_dir: Path, tmp_path: Path
) -> None:
    from tests.conftest import TESTDATA

    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\xff\xfb" + bytes(range(256)) * 4)
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "analyze",
            "-m",
            str(fixed_model_dir),
            str(bad),
            str(TESTDATA / "speechbrain_spk1_snt1.wav"),
            "-o",
            str(out),
            "--no-cache",
            "--no-tts",
        ],
    )
    assert result.exit_code == 1
    summaries = {p.parent.name: json.loads(p.read_text()) for p in out.rglob("summary.json")}
    assert len(summaries) == 2
    broken = next(s for k, s in summaries.items() if k.startswith("broken"))
    assert broken["errors"] and broken["errors"][0]["type"].endswith("Error")
    good = next(s for k, s in summaries.items() if k.startswith("speechbrain"))
    assert good["errors"] == [] and good["utterances"] >= 1
