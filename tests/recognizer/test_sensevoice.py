"""SenseVoiceRecognizer: the real funasr AutoModel path with test-built models."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from callsense.core.errors import InputError, RetryableError
from callsense.pipeline.sensevoice import (
    MIN_SAMPLES,
    RecognizerConfig,
    SenseVoiceRecognizer,
    _batches,
    build_recognizer,
)
from tests.conftest import FIXED_MODEL_RAW, FSMN_VAD_DIR, ROOT
from tools.make_test_model import build_fixed_model
from tools.test_clips import CALL_MODEL_HELD_OUT, load_clip, white_noise

pytestmark = pytest.mark.model

TONE = (0.3 * np.sin(2 * np.pi * 300 * np.arange(16000) / 16000)).astype(np.float32)


def _tags(raw: str) -> str:
    return "".join(raw.split("|>")[i] + "|>" for i in (1, 2))


@pytest.fixture(scope="module")
def mixed_clips() -> list[np.ndarray]:
    """Held-out clips of the keyed model's classes, in an order that alternates them."""
    a = [load_clip(r) for r in CALL_MODEL_HELD_OUT["A"]]
    b = [load_clip(r) for r in CALL_MODEL_HELD_OUT["B"][:4]]
    c = [load_clip(r) for r in CALL_MODEL_HELD_OUT["C"][:2]]
    n = [white_noise(0.2, 1.5, seed=5)]
    return [b[2], a[0], c[0], b[0], n[0], a[1], b[3], c[1], b[1]]


MIXED_TAGS = [
    "<|NEUTRAL|><|Speech|>",
    "<|ANGRY|><|Speech|>",
    "<|EMO_UNKNOWN|><|BGM|>",
    "<|NEUTRAL|><|Speech|>",
    "<|EMO_UNKNOWN|><|Event_UNK|>",
    "<|ANGRY|><|Speech|>",
    "<|NEUTRAL|><|Speech|>",
    "<|EMO_UNKNOWN|><|BGM|>",
    "<|NEUTRAL|><|Speech|>",
]


# --- results: one per clip, in order, batched or not ---------------------------------------


@pytest.mark.slow
def test_one_result_per_clip_in_input_order(
    keyed_recognizer: SenseVoiceRecognizer, mixed_clips: list[np.ndarray]
) -> None:
    results = keyed_recognizer.recognize(mixed_clips)
    assert [_tags(r.raw) for r in results] == MIXED_TAGS


@pytest.mark.slow
def test_batched_and_unbatched_give_the_same_results(
    keyed_model_dir: Path, mixed_clips: list[np.ndarray]
) -> None:
    """Padding in a batch must not leak into the keyed model's whole-clip pooling."""
    one = SenseVoiceRecognizer(RecognizerConfig(model=str(keyed_model_dir), batch_size_s=0.01))
    big = SenseVoiceRecognizer(RecognizerConfig(model=str(keyed_model_dir), batch_size_s=600))
    batch_sizes: list[int] = []
    hook = big._am.model.encoder.register_forward_hook(
        lambda _m, inputs, _o: batch_sizes.append(inputs[0].shape[0])
    )
    try:
        batched = big.recognize(mixed_clips)
    finally:
        hook.remove()
    assert batch_sizes == [len(mixed_clips)]  # really one padded batch, on CPU
    single = one.recognize(mixed_clips)
    assert [r.raw for r in batched] == [r.raw for r in single]
    for x, y in zip(batched, single, strict=True):
        assert x.confidence.emotion == pytest.approx(y.confidence.emotion, abs=1e-4)
        assert x.confidence.event == pytest.approx(y.confidence.event, abs=1e-4)


def test_batches_hold_at_most_batch_size_s() -> None:
    sizes = [16000 * s for s in (3, 1, 5, 2, 2, 9)]
    batches = _batches(list(range(6)), sizes, max_seconds=6)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert [5] in batches  # longer than the limit: alone
    for b in batches:
        assert len(b) == 1 or sum(sizes[i] for i in b) <= 6 * 16000
    assert _batches([], [], 10) == []


def test_empty_input(fixed_recognizer: SenseVoiceRecognizer) -> None:
    assert fixed_recognizer.recognize([]) == []


# --- options -------------------------------------------------------------------------------


def test_language_and_itn_options(fixed_model_dir: Path) -> None:
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(fixed_model_dir), language="ja"))
    assert rec.recognize([TONE])[0].raw.startswith("<|ja|><|ANGRY|>")  # config default
    assert rec.recognize([TONE], language="yue")[0].raw.startswith("<|yue|>")
    assert rec.recognize([TONE], language="auto")[0].raw == FIXED_MODEL_RAW
    woitn = SenseVoiceRecognizer(RecognizerConfig(model=str(fixed_model_dir), use_itn=False))
    assert woitn.recognize([TONE])[0].raw == FIXED_MODEL_RAW.replace("withitn", "woitn")
    with pytest.raises(InputError, match="language must be one of"):
        rec.recognize([TONE], language="klingon")


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="extra"):
        RecognizerConfig(model="x", beam_size=5)  # type: ignore[call-arg]
    with pytest.raises(ValueError):
        RecognizerConfig(batch_size_s=0)
    assert RecognizerConfig().ncpu >= 1


def test_ban_emo_unk_falls_back_with_confidence(tmp_path: Path) -> None:
    out = build_fixed_model(tmp_path / "m", emotion="EMO_UNKNOWN", event="BGM", vad_source=None)
    plain = SenseVoiceRecognizer(RecognizerConfig(model=str(out)))
    banned = SenseVoiceRecognizer(RecognizerConfig(model=str(out), ban_emo_unk=True))
    p, b = plain.recognize([TONE])[0], banned.recognize([TONE])[0]
    assert _tags(p.raw) == "<|EMO_UNKNOWN|><|BGM|>"
    assert _tags(b.raw) == "<|NEUTRAL|><|BGM|>"
    assert p.confidence.emotion is not None and b.confidence.emotion is not None
    # NEUTRAL is the runner-up at 0.9x the logit: confident once EMO_UNKNOWN is removed
    assert b.confidence.emotion > 0.9


# --- confidence ----------------------------------------------------------------------------


def test_forced_tags_are_confident(fixed_recognizer: SenseVoiceRecognizer) -> None:
    conf = fixed_recognizer.recognize([TONE, np.zeros(4000, np.float32)])
    for r in conf:
        assert r.confidence.lang > 0.9
        assert r.confidence.emotion > 0.9
        assert r.confidence.event > 0.9


def test_nearly_tied_tags_are_not_confident(tmp_path: Path) -> None:
    """Tie the emotion logits of ANGRY and NEUTRAL, and three event logits, at runtime."""
    import torch

    out = build_fixed_model(tmp_path / "m", vad_source=None)
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(out)))
    tok = rec._tag_ids
    lo = rec._am.model.ctc.ctc_lo.weight
    with torch.no_grad():
        angry, neutral = tok["emotion"]["ANGRY"], tok["emotion"]["NEUTRAL"]
        lo[neutral, 1] = lo[angry, 1] * 0.999
        speech = tok["event"]["Speech"]
        for other in ("BGM", "Laughter"):
            lo[tok["event"][other], 2] = lo[speech, 2]
    r = rec.recognize([TONE])[0]
    assert _tags(r.raw) in {"<|ANGRY|><|Speech|>", "<|ANGRY|><|BGM|>", "<|ANGRY|><|Laughter|>"}
    assert 0.45 < r.confidence.emotion < 0.6
    assert r.confidence.event == pytest.approx(1 / 3, abs=0.02)
    assert r.confidence.lang > 0.9


@pytest.mark.slow
def test_keyed_confidence_follows_the_class_margin(
    keyed_recognizer: SenseVoiceRecognizer, mixed_clips: list[np.ndarray]
) -> None:
    """Real clips give graded probabilities, each the max of its frame's distribution."""
    for r in keyed_recognizer.recognize(mixed_clips):
        assert 1 / 3 < r.confidence.emotion <= 1.0  # the winner of >= 3 candidates
        assert 1 / 4 < r.confidence.event <= 1.0


# --- short clips, bad clips ----------------------------------------------------------------


def test_too_short_clips_abstain(fixed_recognizer: SenseVoiceRecognizer) -> None:
    """< 400 samples crash funasr's fbank; such clips get an empty raw and no confidence."""
    clips = [
        np.zeros(0, np.float32),
        TONE[:1],
        TONE[: MIN_SAMPLES - 1],
        TONE,
        TONE[:MIN_SAMPLES],
    ]
    results = fixed_recognizer.recognize(clips)
    assert [r.raw for r in results[:3]] == ["", "", ""]
    assert all(r.confidence.emotion is None and r.confidence.lang is None for r in results[:3])
    assert results[3].raw == FIXED_MODEL_RAW
    assert results[4].raw.startswith("<|en|><|ANGRY|><|Speech|><|withitn|>")


def test_clip_must_be_mono(fixed_recognizer: SenseVoiceRecognizer) -> None:
    with pytest.raises(InputError, match="clip 1: expected mono"):
        fixed_recognizer.recognize([TONE, np.zeros((2, 1600), np.float32)])


@pytest.mark.slow
def test_threads_share_one_recognizer(
    keyed_recognizer: SenseVoiceRecognizer, mixed_clips: list[np.ndarray]
) -> None:
    expected = keyed_recognizer.recognize(mixed_clips)
    got: dict[int, list] = {}

    def work(k: int) -> None:
        order = mixed_clips[k:] + mixed_clips[:k]
        got[k] = keyed_recognizer.recognize(order)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k, results in got.items():
        assert results == expected[k:] + expected[:k]


# --- loading: bad model directories, hub ids, noise ----------------------------------------


@pytest.mark.parametrize("name", ["./no-such-model", "/no/such/dir", "~/no-such-model", "nomodel"])
def test_missing_local_dir_fails_fast(name: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(InputError, match="model directory does not exist"):
        SenseVoiceRecognizer(RecognizerConfig(model=name))
    assert time.monotonic() - t0 < 2  # no model-hub retries


def test_not_a_model_directory(tmp_path: Path) -> None:
    (tmp_path / "file.pt").write_bytes(b"x")
    with pytest.raises(InputError, match="is a directory, not a file"):
        SenseVoiceRecognizer(RecognizerConfig(model=str(tmp_path / "file.pt")))
    with pytest.raises(InputError, match=r"not a SenseVoice model directory \(no config.yaml"):
        SenseVoiceRecognizer(RecognizerConfig(model=str(tmp_path)))


def test_vad_model_is_not_sensevoice() -> None:
    with pytest.raises(InputError, match="not SenseVoiceSmall"):
        SenseVoiceRecognizer(RecognizerConfig(model=str(FSMN_VAD_DIR)))


def _with_config_edit(src: Path, dst: Path, old: str, new: str) -> Path:
    shutil.copytree(src, dst)
    config = dst / "config.yaml"
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))
    return dst


def test_checkpoint_with_wrong_sizes_is_an_error(fixed_model_dir: Path, tmp_path: Path) -> None:
    bad = _with_config_edit(fixed_model_dir, tmp_path / "m", "output_size: 64", "output_size: 32")
    with pytest.raises(InputError, match=r"model\.pt does not match config\.yaml"):
        SenseVoiceRecognizer(RecognizerConfig(model=str(bad)))


def test_checkpoint_with_missing_weights_is_an_error(fixed_model_dir: Path, tmp_path: Path) -> None:
    bad = _with_config_edit(fixed_model_dir, tmp_path / "m", "num_blocks: 2", "num_blocks: 3")
    with pytest.raises(InputError, match=r"model.pt lacks \d+ weights .*encoders\.1\."):
        SenseVoiceRecognizer(RecognizerConfig(model=str(bad)))


@pytest.mark.slow
def test_hub_id_that_cannot_be_downloaded() -> None:
    """Offline, funasr retries the hub for ~30 s, then the error says what to do."""
    with pytest.raises(RetryableError, match=r"could not download.*--model DIR"):
        SenseVoiceRecognizer(RecognizerConfig(model="callsense-test/NoSuchModel"))


def test_no_stdout_noise_and_logging_untouched(
    fixed_model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    rec = build_recognizer(RecognizerConfig(model=str(fixed_model_dir)))
    rec.recognize([TONE, TONE[:8000]])
    out, err = capfd.readouterr()
    assert out == ""
    assert "funasr" not in err and "INFO" not in err
    assert root.level == level and root.handlers == handlers


@pytest.mark.slow
def test_fresh_process_prints_only_its_own_output(fixed_model_dir: Path) -> None:
    """The import of funasr itself (version notice, basicConfig) must not leak either."""
    code = (
        "import numpy as np, logging\n"
        "from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer\n"
        f"r = SenseVoiceRecognizer(RecognizerConfig(model={str(fixed_model_dir)!r}))\n"
        "print(r.recognize([np.zeros(16000, np.float32)])[0].raw)\n"
        "logging.getLogger('x').info('hidden')\n"
        "print(logging.getLogger().level, len(logging.getLogger().handlers))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{FIXED_MODEL_RAW}\n30 0\n"
    assert proc.stderr == ""


def test_model_id_changes_when_the_model_is_rebuilt(tmp_path: Path) -> None:
    out = build_fixed_model(tmp_path / "m", vad_source=None)
    rec = SenseVoiceRecognizer(RecognizerConfig(model=str(out)))
    first = rec.model_id
    assert first.startswith(str(out.resolve()))
    time.sleep(0.01)
    build_fixed_model(tmp_path / "m", emotion="SAD", vad_source=None)
    assert rec.model_id != first
    assert rec.capabilities.confidence and rec.capabilities.batching
