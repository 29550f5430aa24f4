"""One flow: a recording given to ``callsense analyze`` and the same audio streamed through
``WS /v1/stream`` give the same utterances (times within one 10 ms VAD frame), identical
decisions, the same conversation dynamics and the same audit block — on the keyed angry
call, a real stereo μ-law call, and a call with short fragments around its turns."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.cli import app
from callsense.pipeline.config import CacheConfig, load_config
from tests.conftest import TESTDATA
from tests.live.conftest import LiveService, serving
from tests.live.test_live_ws import of_type, stream_call

pytestmark = [pytest.mark.model, pytest.mark.slow]

VAD_FRAME_S = 0.01 + 1e-9  # one FSMN-VAD frame (float sums may land a hair past it)
COMPARED = ("channel", "speaker", "source", "lang", "emotion", "event", "text", "raw")


def _pcm8k(path: Path) -> bytes:
    """The call as the stream carries it: interleaved 8 kHz stereo int16."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "2", "-ar", "8000"]
    return subprocess.run([*cmd, "-f", "s16le", "-"], check=True, capture_output=True).stdout


def _analyze(model_dir: Path, path: Path, out: Path, config: Path | None) -> dict[str, Any]:
    args = ["analyze", "--model", str(model_dir), str(path), "--out", str(out)]
    result = CliRunner().invoke(app, args + (["--config", str(config)] if config else []))
    assert result.exit_code == 0, result.output
    (call_dir,) = [p for p in out.iterdir() if p.is_dir()]

    def rows(name: str) -> list[dict[str, Any]]:
        text = (call_dir / name).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines()]

    summary = json.loads((call_dir / "summary.json").read_text(encoding="utf-8"))
    return {"utterances": rows("utterances.jsonl"), "decisions": rows("decisions.jsonl"),
            "summary": summary}  # fmt: skip


def _stream(service: LiveService, call_id: str, path: Path) -> dict[str, Any]:
    received, _, _ = asyncio.run(stream_call(service, call_id, _pcm8k(path), speed=40.0))
    (end,) = of_type(received, "end")
    return {
        "utterances": [r.message for r in of_type(received, "utterance")],
        "decisions": [r.message for r in of_type(received, "decision")],
        "summary": end.message["summary"],
    }


def _fragments_call(out: Path, angry: Path) -> Path:
    """The angry call with short bursts of speech on both channels: alone between turns,
    just before a turn and just after one (50-250 ms each)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(angry), "-f", "f32le", "-ar", "16000"]
    raw = subprocess.run([*cmd, "-"], check=True, capture_output=True).stdout
    stereo = np.frombuffer(raw, np.float32).reshape(-1, 2).copy()
    voice = stereo[:, 0][np.abs(stereo[:, 0]) > 0.05]  # loud customer speech samples
    rng = np.random.default_rng(7)
    for channel, at, length in ((0, 0.2, 0.08), (1, 3.1, 0.25), (0, 9.9, 0.15), (1, 7.6, 0.12)):
        i = int(at * 16000)
        n = int(length * 16000)
        start = int(rng.integers(0, voice.size - n))
        stereo[i : i + n, channel] += voice[start : start + n]
    path = out / "fragments.wav"
    enc = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "f32le", "-ar", "16000", "-ac", "2"]
    subprocess.run(
        [*enc, "-i", "-", "-ar", "8000", "-c:a", "pcm_mulaw", str(path)],
        input=np.clip(stereo, -1, 1).tobytes(),
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory, angry_call: tuple[Path, list]) -> dict:
    tmp = tmp_path_factory.mktemp("one-flow")
    real = tmp / "real_mulaw.wav"
    src = TESTDATA / "aws-lca_Auto_Repairs_49_stereo_first40s.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(src), "-c:a", "pcm_mulaw", str(real)],
        check=True,
    )
    return {
        "angry": angry_call[0],
        "real-mulaw": real,
        "fragments": _fragments_call(tmp, angry_call[0]),
    }


# Utterances shorter than 0.7 s are fragments here, so the blips of the fragments call are:
# one 0.5 s after an agent turn (dropped: that turn was already handed on), one 0.66 s before
# an agent turn (joined to it) and one alone (dropped).
# This call also scores speech/sound per segment (the other calls: over whole channels).
FRAGMENT_RULES = (
    "segmentation:\n  min_utterance_s: 0.7\n  merge_gap_s: 0.7\nvad:\n  speech_scoring: segments\n"
)


@pytest.fixture(scope="module")
def fragment_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fragment-rules") / "callsense.yaml"
    path.write_text(FRAGMENT_RULES, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fragment_service(
    tmp_path_factory: pytest.TempPathFactory, keyed_model_dir: Path, fragment_rules: Path
) -> Iterator[LiveService]:
    cfg = load_config(fragment_rules, model=str(keyed_model_dir), schema=AppConfig, environ={})
    cfg = cfg.model_copy(update={"cache": CacheConfig(enabled=False)})
    with serving(tmp_path_factory.mktemp("fragment-service"), cfg) as service:
        yield service


@pytest.mark.parametrize("name", ["angry", "real-mulaw", "fragments"])
def test_a_stream_and_its_recording_give_the_same_utterances_and_decisions(
    name: str, calls: dict, keyed_model_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = calls[name]
    config = request.getfixturevalue("fragment_rules") if name == "fragments" else None
    service = request.getfixturevalue("fragment_service" if config else "live_service")
    batch = _analyze(keyed_model_dir, path, tmp_path / "out", config)
    live = _stream(service, f"one-flow-{name}", path)

    assert len(live["utterances"]) == len(batch["utterances"]) > 0
    for b, s in zip(batch["utterances"], live["utterances"], strict=True):
        assert {k: s[k] for k in COMPARED} == {k: b[k] for k in COMPARED}
        assert s["start"] == pytest.approx(b["start"], abs=VAD_FRAME_S)
        assert s["end"] == pytest.approx(b["end"], abs=VAD_FRAME_S)

    def decision(d: dict[str, Any]) -> tuple:
        return (d["policy"], d["rule"], d["action"], json.dumps(d["params"], sort_keys=True),
                [e["seq"] for e in d["evidence"]], d["policy_hash"])  # fmt: skip

    assert [decision(d) for d in live["decisions"]] == [decision(d) for d in batch["decisions"]]
    for b, s in zip(batch["decisions"], live["decisions"], strict=True):
        assert s["at"] == pytest.approx(b["at"], abs=VAD_FRAME_S)
    if name == "angry":
        assert [d["rule"] for d in batch["decisions"]] == ["angry-streak"]
    if name == "fragments":  # the joined blip starts its agent turn 1.2 s early
        agent_starts = [u["start"] for u in batch["utterances"] if u["channel"] == 1]
        assert any(7.2 < t < 7.4 for t in agent_starts), agent_starts
        assert not any(2.8 < u["end"] < 3.7 for u in batch["utterances"])

    # every decision is explainable by the policies, the config and the model that made it
    audit = live["summary"]["audit"]
    for key in ("policy_hash", "config_hash", "model"):
        assert audit.get(key) == batch["summary"]["audit"][key], key
    assert live["summary"]["utterances"] == batch["summary"]["utterances"]
    _assert_same_dynamics(batch["summary"]["dynamics"], live["summary"]["dynamics"])
    if name == "angry":  # three angry customer turns, agent turns between them, no overlap
        dynamics = batch["summary"]["dynamics"]
        assert dynamics["overtalk_count"] == dynamics["interruptions"] == 0
        assert dynamics["emotion_trend"]["customer"]["ANGRY"] == [3]
        assert "agent" not in dynamics["emotion_trend"]  # the guard kept agent emotion out
        assert dynamics["temperature"]["peak"] > 0.5


def _assert_same_dynamics(batch: dict[str, Any], live: dict[str, Any]) -> None:
    """Counts equal; times within the VAD frames of the utterances' two ends (and the
    stream's duration within 50 ms); scores and shares within what those moves can change."""
    n = sum(s["utterances"] for s in batch["speakers"].values()) + 1
    seconds = 2 * n * VAD_FRAME_S + 0.05
    counts = ("overtalk_count", "interruptions", "minutes", "emotion_trend")
    assert {k: live[k] for k in counts} == {k: batch[k] for k in counts}
    for key in ("duration_s", "not_streamed_s", "talk_s", "non_talk_s", "silence_s",
                "longest_silence_s", "longest_silence_at", "hold_s", "overtalk_s"):  # fmt: skip
        assert live[key] == pytest.approx(batch[key], abs=seconds), key
    assert live["non_talk_share"] == pytest.approx(batch["non_talk_share"], abs=0.01)
    assert live["speakers"].keys() == batch["speakers"].keys()
    for name, b in batch["speakers"].items():
        s = live["speakers"][name]
        exact = ("utterances", "interruptions", "words", "chars")
        assert {k: s[k] for k in exact} == {k: b[k] for k in exact}, name
        assert s["talk_s"] == pytest.approx(b["talk_s"], abs=seconds), name
        assert s["talk_ratio"] == pytest.approx(b["talk_ratio"], abs=0.01), name
        for rate in ("words_per_minute", "chars_per_minute"):
            assert s[rate] == pytest.approx(b[rate], rel=0.05), (name, rate)
    b_temp, s_temp = batch["temperature"], live["temperature"]
    assert len(s_temp["points"]) == len(b_temp["points"])
    for (ta, va), (tb, vb) in zip(s_temp["points"], b_temp["points"], strict=True):
        assert ta == pytest.approx(tb, abs=seconds) and va == pytest.approx(vb, abs=0.02)
    assert s_temp["per_minute"] == pytest.approx(b_temp["per_minute"], abs=0.02)
    for key in ("peak", "final", "end_weighted"):
        assert s_temp[key] == pytest.approx(b_temp[key], abs=0.02), key
