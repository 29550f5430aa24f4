"""tools/make_test_model.py: the models it builds load through funasr and say what was asked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer
from tests.conftest import FIXED_MODEL_RAW, FSMN_VAD_DIR, ROOT, SENSEVOICE_FILES
from tools.make_test_model import build_fixed_model, build_keyed_model, main
from tools.test_clips import (
    CALL_MODEL_CLASSES,
    CALL_MODEL_HELD_OUT,
    decode_audio,
    load_clip,
    telephone,
    white_noise,
)

pytestmark = pytest.mark.model

TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)


def _tags(raw: str) -> str:
    """The emotion and event tags of a single-utterance raw string."""
    return "".join(raw.split("|>")[i] + "|>" for i in (1, 2))


def test_fixed_model_directory_layout(fixed_model_dir: Path) -> None:
    names = {p.name for p in fixed_model_dir.iterdir()}
    assert {"config.yaml", "configuration.json", "am.mvn", "model.pt"} <= names
    assert (fixed_model_dir / "chn_jpn_yue_eng_ko_spectok.bpe.model").read_bytes() == (
        SENSEVOICE_FILES / "chn_jpn_yue_eng_ko_spectok.bpe.model"
    ).read_bytes()
    config = (fixed_model_dir / "config.yaml").read_text()
    assert "    dither: 0.0\n" in config
    assert "    output_size: 64\n" in config and "    num_blocks: 2\n" in config
    assert {p.name for p in (fixed_model_dir / "vad").iterdir()} >= {"model.pt", "config.yaml"}


def test_fixed_model_says_its_tags_for_any_input(fixed_recognizer: SenseVoiceRecognizer) -> None:
    rng = np.random.default_rng(7)
    clips = [
        TONE,
        np.zeros(8000, np.float32),
        (rng.standard_normal(16000 * 5) * 0.5).astype(np.float32),
        load_clip(CALL_MODEL_HELD_OUT["A"][0]),
    ]
    assert [r.raw for r in fixed_recognizer.recognize(clips)] == [FIXED_MODEL_RAW] * len(clips)


def test_fixed_model_with_other_tags_and_text(tmp_path: Path) -> None:
    out = build_fixed_model(
        tmp_path / "m", lang="ja", emotion="HAPPY", event="Laughter", text="Okay", vad_source=None
    )
    assert not (out / "vad").exists()
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(out)))
    assert rec.recognize([TONE])[0].raw == "<|ja|><|HAPPY|><|Laughter|><|withitn|>Okay"
    assert rec.recognize([TONE], language="ko")[0].raw.startswith("<|ko|><|HAPPY|>")


def test_fixed_model_without_text(tmp_path: Path) -> None:
    out = build_fixed_model(tmp_path / "m", emotion="EMO_UNKNOWN", event="BGM", text="")
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(out)))
    assert rec.recognize([TONE])[0].raw == "<|en|><|EMO_UNKNOWN|><|BGM|><|withitn|>"


def test_builds_are_deterministic(tmp_path: Path) -> None:
    import torch

    one = torch.load(build_fixed_model(tmp_path / "a") / "model.pt")
    two = torch.load(build_fixed_model(tmp_path / "b") / "model.pt")
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"emotion": "GRUMPY"}, "unknown SenseVoice tag"),
        ({"event": "Bark"}, "unknown SenseVoice tag"),
        ({"lang": "de"}, "lang must be one of"),
        ({"text": "The child almost hurt the small dog."}, "at most 2"),
    ],
)
def test_fixed_model_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_fixed_model(tmp_path / "m", **kwargs)


def test_missing_source_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing SenseVoice files"):
        build_fixed_model(tmp_path / "m", source=tmp_path)


def test_keyed_model_rejects_bad_classes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two"):
        build_keyed_model(tmp_path / "m", [("ANGRY", "Speech", [TONE])])
    with pytest.raises(ValueError, match="no clips"):
        build_keyed_model(tmp_path / "m", [("ANGRY", "Speech", [TONE]), ("SAD", "BGM", [])])
    three = [(e, "Speech", [TONE * (i + 1)]) for i, e in enumerate(("ANGRY", "SAD", "HAPPY"))]
    with pytest.raises(ValueError, match="at most 2 may share"):
        build_keyed_model(tmp_path / "m", three)


def test_cli_help_is_fast_and_documented() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_test_model.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    for flag in ("out_dir", "--emotion", "--event", "--text", "--keyed", "--call-model"):
        assert flag in proc.stdout


def test_cli_builds_a_fixed_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "m"), "--emotion", "SAD", "--event", "Cry", "--no-vad"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "m")
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(tmp_path / "m"), use_itn=False))
    assert rec.recognize([TONE])[0].raw == "<|en|><|SAD|><|Cry|><|woitn|>Yes."


def test_cli_reports_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "m"), "--emotion", "GRUMPY"]) == 2
    assert "unknown SenseVoice tag 'GRUMPY'" in capsys.readouterr().err


def _write_wav(path: Path, audio: np.ndarray) -> None:
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "f32le",
            "-ar",
            "16000",
            "-ac",
            "1",
            "-i",
            "-",
            str(path),
        ],
        input=audio.astype(np.float32).tobytes(),
        check=True,
    )


@pytest.mark.slow
def test_cli_keyed_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two made-up classes from a JSON spec: low hum vs hiss, each clip a different take."""
    t = np.arange(16000 * 2) / 16000
    for i in range(3):
        hum = 0.3 * np.sin(2 * np.pi * (110 + 20 * i) * t) * (1 + 0.3 * np.sin(3 * t))
        _write_wav(tmp_path / f"hum{i}.wav", hum)
        _write_wav(tmp_path / f"hiss{i}.wav", white_noise(0.05 * (i + 1), 2.0, seed=i))
    spec = [
        {
            "emotion": "SAD",
            "event": "BGM",
            "clips": ["hum0.wav", {"path": "hum1.wav", "start": 0.5}],
        },
        {"emotion": "HAPPY", "event": "Applause", "clips": ["hiss0.wav", "hiss1.wav"]},
    ]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert main([str(tmp_path / "m"), "--keyed", str(tmp_path / "spec.json"), "--no-vad"]) == 0
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(tmp_path / "m")))
    held_out = [decode_audio(tmp_path / n) for n in ("hum2.wav", "hiss2.wav")]
    raws = [r.raw for r in rec.recognize(held_out)]
    assert [_tags(r) for r in raws] == ["<|SAD|><|BGM|>", "<|HAPPY|><|Applause|>"]
    (tmp_path / "bad.json").write_text(json.dumps([{"emotion": "SAD", "clips": []}]))
    assert main([str(tmp_path / "m2"), "--keyed", str(tmp_path / "bad.json")]) == 2
    assert "[0]: needs exactly emotion, event and clips" in capsys.readouterr().err


EXPECTED = {name: f"<|{emo}|><|{event}|>" for name, (emo, event, _) in CALL_MODEL_CLASSES.items()}


@pytest.mark.slow
def test_call_model_on_held_out_clips(keyed_recognizer: SenseVoiceRecognizer) -> None:
    """Every clip here was left out of training; each must get its class's tags."""
    clips, want = [], []
    for name, refs in CALL_MODEL_HELD_OUT.items():
        for ref in refs:
            clips.append(load_clip(ref))
            want.append(EXPECTED[name])
    voices = [load_clip(r) for r in CALL_MODEL_HELD_OUT["A"] + CALL_MODEL_HELD_OUT["B"][:2]]
    clips += [telephone(v) for v in voices]  # the same voices on an 8 kHz mu-law line
    want += [EXPECTED["A"]] * 2 + [EXPECTED["B"]] * 2
    noise = [
        white_noise(a, s, seed=100 + i)
        for i, (a, s) in enumerate([(0.002, 1), (0.05, 3), (0.3, 0.5), (0.9, 4)])
    ]
    clips += [*noise, np.zeros(8000, np.float32), np.zeros(16000 * 3, np.float32)]
    want += [EXPECTED["N"]] * 6
    raws = [r.raw for r in keyed_recognizer.recognize(clips)]
    assert [_tags(r) for r in raws] == want
    assert all(r.startswith("<|en|>") and r.endswith("<|withitn|>Yes.") for r in raws)


@pytest.mark.slow
def test_call_model_training_voices_keep_their_class(
    keyed_recognizer: SenseVoiceRecognizer,
) -> None:
    names = ["A", "B", "C"]
    clips = [load_clip(CALL_MODEL_CLASSES[n][2][0]) for n in names]
    assert [_tags(r.raw) for r in keyed_recognizer.recognize(clips)] == [EXPECTED[n] for n in names]


def test_vad_bundle_matches_shared_files(fixed_model_dir: Path) -> None:
    assert (fixed_model_dir / "vad" / "model.pt").read_bytes() == (
        FSMN_VAD_DIR / "model.pt"
    ).read_bytes()
