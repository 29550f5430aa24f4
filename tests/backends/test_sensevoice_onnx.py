"""The ONNX Runtime backend against funasr's torch path, with test-built SenseVoice models.

Two tiny models: random weights (outputs depend on every frame and every weight, so equal
strings mean equal computation) and the fixed-tag surgery model of tools/make_test_model.py
(known tags with large margins, the case where int8 must not change anything).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from bench._common import build_model_dir, decode_16k
from callsense.connectors import cli_model
from callsense.core.errors import InputError
from callsense.pipeline.quiet import import_funasr, quiet
from callsense.pipeline.sensevoice_onnx import SenseVoiceOnnxRecognizer, export_onnx
from tests.conftest import ROOT, TESTDATA
from tools.make_test_model import build_fixed_model

pytestmark = pytest.mark.model

CLIPS = (
    "ravdess_03-01-05-01-01-01-01.wav",
    "speechbrain_spk1_snt1.wav",
    "firered_IT0011W0001.wav",
    "commonvoice_ja_38833628_16k.wav",
    "sensevoice-example_zh.mp3",
    "lsn_vox-id00358-laugh_2.mp3",
)
TINY = {
    "output_size": 64,
    "attention_heads": 2,
    "linear_units": 128,
    "num_blocks": 2,
    "tp_blocks": 1,
}
TAGS = re.compile(r"^((?:<\|[^|]+\|>){4})")


@pytest.fixture(scope="session")
def clips() -> list[np.ndarray]:
    return [decode_16k(TESTDATA / name) for name in CLIPS]


@pytest.fixture(scope="session")
def random_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import_funasr()
    root = tmp_path_factory.mktemp("random")
    model = build_model_dir(root / "torch", TINY, seed=1, dither=0.0)
    export_onnx(model, root / "onnx", quantize="int8")
    return model, root / "onnx"


@pytest.fixture(scope="session")
def fixed_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fixed")
    model = build_fixed_model(root / "torch", emotion="EMO_UNKNOWN", event="Laughter")
    export_onnx(model, root / "onnx", quantize="int8")
    return model, root / "onnx"


def _automodel(model_dir: Path):
    funasr = import_funasr()
    with quiet():
        return funasr.AutoModel(
            model=str(model_dir), disable_update=True, device="cpu", ncpu=2, disable_pbar=True
        )


def _funasr_texts(am, clips, **kw) -> list[str]:
    with quiet():
        return [am.generate(input=c, **kw)[0]["text"] for c in clips]


@pytest.mark.parametrize(("language", "use_itn"), [("auto", True), ("en", False), ("zh", True)])
def test_fp32_matches_funasr_exactly_on_real_speech(random_dirs, clips, language, use_itn):
    torch_dir, onnx_dir = random_dirs
    want = _funasr_texts(_automodel(torch_dir), clips, language=language, use_itn=use_itn)
    rec = SenseVoiceOnnxRecognizer(onnx_dir, use_itn=use_itn)
    got = [r.raw for r in rec.recognize(clips, language=language)]
    assert got == want
    assert len(set(got)) == len(got)  # random weights: every clip says something different


def test_features_equal_funasr_frontend(random_dirs, clips):
    import torch
    from funasr.utils.load_utils import extract_fbank

    torch_dir, onnx_dir = random_dirs
    frontend = _automodel(torch_dir).kwargs["frontend"]
    rec = SenseVoiceOnnxRecognizer(onnx_dir)
    for clip in clips:
        want, _ = extract_fbank([torch.as_tensor(clip)], data_type="sound", frontend=frontend)
        np.testing.assert_allclose(rec.features(clip), want[0].numpy(), rtol=0, atol=1e-4)


def test_batches_give_the_same_strings_as_single_clips(random_dirs, clips):
    _, onnx_dir = random_dirs
    single = SenseVoiceOnnxRecognizer(onnx_dir).recognize(clips)
    batched = SenseVoiceOnnxRecognizer(onnx_dir, batch_size=4).recognize(clips)
    assert [r.raw for r in batched] == [r.raw for r in single]


def test_int8_agreement_with_fp32_on_random_weights(random_dirs, clips):
    """Random weights have tiny margins, so this is a floor, reported rather than tuned."""
    _, onnx_dir = random_dirs
    fp32 = SenseVoiceOnnxRecognizer(onnx_dir)
    int8 = SenseVoiceOnnxRecognizer(onnx_dir, quantize="int8")
    same = total = 0
    for clip in clips:
        feats = [fp32.features(clip)]
        a = fp32.logits(feats)[0].argmax(-1)
        b = int8.logits(feats)[0].argmax(-1)
        same += int((a == b).sum())
        total += a.size
    agreement = same / total
    print(f"int8 vs fp32 top-token agreement (random weights): {agreement:.3f}")
    assert agreement > 0.8


def test_int8_keeps_the_tags_of_the_fixed_model(fixed_dirs, clips):
    torch_dir, onnx_dir = fixed_dirs
    am = _automodel(torch_dir)
    int8 = SenseVoiceOnnxRecognizer(onnx_dir, quantize="int8")
    for language in ("auto", "ja"):
        want = _funasr_texts(am, clips, language=language, use_itn=True)
        got = int8.recognize(clips, language=language)
        assert [TAGS.match(r.raw).group(1) for r in got] == [TAGS.match(w).group(1) for w in want]
        assert [r.raw for r in got] == want
    assert want[0].startswith("<|ja|><|EMO_UNKNOWN|><|Laughter|><|withitn|>")


def test_ban_emo_unk_falls_back_like_funasr(fixed_dirs, clips):
    torch_dir, onnx_dir = fixed_dirs
    want = _funasr_texts(_automodel(torch_dir), clips[:2], use_itn=False, ban_emo_unk=True)
    rec = SenseVoiceOnnxRecognizer(onnx_dir, use_itn=False, ban_emo_unk=True)
    got = [r.raw for r in rec.recognize(clips[:2])]
    assert got == want
    assert got[0].startswith("<|en|><|NEUTRAL|><|Laughter|><|woitn|>")


def test_confidence_is_the_softmax_of_each_tag_frame(fixed_dirs, random_dirs, clips):
    sure = SenseVoiceOnnxRecognizer(fixed_dirs[1]).recognize(clips[:2])
    unsure = SenseVoiceOnnxRecognizer(random_dirs[1]).recognize(clips[:2])
    for r in sure:  # surgery margins: alpha=10 on a one-hot of ~24 after LayerNorm
        assert min(r.confidence.lang, r.confidence.emotion, r.confidence.event) > 0.99
    for r in unsure:  # random weights over 25055 tokens: close to uniform, or not a tag
        c = r.confidence
        assert all(p is None or p < 0.05 for p in (c.lang, c.emotion, c.event))


def test_clips_under_25_ms_abstain(fixed_dirs):
    rec = SenseVoiceOnnxRecognizer(fixed_dirs[1])
    short, ok = rec.recognize([np.zeros(399, np.float32), np.zeros(400, np.float32)])
    assert short.raw == ""
    assert ok.raw.startswith("<|en|><|EMO_UNKNOWN|><|Laughter|>")


def test_bad_inputs_raise_input_errors(random_dirs, tmp_path, clips):
    with pytest.raises(InputError, match=r"model\.int8\.onnx: missing.*--quantize int8"):
        SenseVoiceOnnxRecognizer(tmp_path, quantize="int8")
    with pytest.raises(InputError, match="language: must be one of"):
        SenseVoiceOnnxRecognizer(random_dirs[1]).recognize(clips[:1], language="fr")
    with pytest.raises(InputError, match=r"model\.pt: missing"):
        export_onnx(tmp_path, tmp_path / "out")


def test_onnx_backend_loads_without_funasr_or_torch(random_dirs):
    """The point of the backend: no 5 s funasr import, no torch, no fp32 checkpoint."""
    code = (
        "import sys, time, numpy as np\n"
        "t = time.perf_counter()\n"
        "from callsense.pipeline.sensevoice_onnx import SenseVoiceOnnxRecognizer\n"
        f"rec = SenseVoiceOnnxRecognizer({str(random_dirs[1])!r}, quantize='int8')\n"
        "rec.recognize([np.zeros(16000, np.float32)])\n"
        "print(time.perf_counter() - t, 'funasr' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    print(f"import + load + first clip: {float(out[0]):.2f} s")
    assert out[1:] == ["False", "False"]


def test_cli_export_onnx(fixed_dirs, tmp_path):
    app = typer.Typer()
    cli_model.register(app)
    app.command("noop")(lambda: None)  # a second command keeps `model` a subcommand group
    runner = CliRunner()
    out_dir = tmp_path / "onnx"
    result = runner.invoke(
        app, ["model", "export-onnx", str(fixed_dirs[0]), str(out_dir), "--quantize", "int8"]
    )
    assert result.exit_code == 0, result.output
    assert "model.int8.onnx" in result.output
    rec = SenseVoiceOnnxRecognizer(out_dir, quantize="int8")
    assert rec.recognize([np.zeros(8000, np.float32)])[0].raw.startswith("<|en|><|EMO_UNKNOWN|>")

    bad = runner.invoke(
        app, ["model", "export-onnx", str(tmp_path), str(out_dir), "--quantize", "int4"]
    )
    assert bad.exit_code == 2
    missing = runner.invoke(app, ["model", "export-onnx", str(tmp_path / "nope"), str(out_dir)])
    assert missing.exit_code == 2
    assert "model.pt: missing" in missing.output


def test_the_service_turns_thread_spinning_off_and_batch_work_keeps_it(random_dirs) -> None:
    """Spinning threads give batch work its best RTF but take the cores a live call's VAD
    needs: `callsense serve` turns it off unless the config asks for it."""
    from callsense.connectors.appconfig import AppConfig
    from callsense.connectors.runtime import _service_tuned
    from callsense.pipeline.recognizer import build_recognizer

    _, onnx_dir = random_dirs
    cfg = AppConfig.model_validate(
        {"recognizer": {"model": str(onnx_dir), "backend": "onnx", "quantize": "int8"}}
    )

    def spinning(c: AppConfig) -> str:
        rec = build_recognizer(c.recognizer)
        options = rec._session.get_session_options()  # type: ignore[attr-defined]
        try:
            return options.get_session_config_entry("session.intra_op.allow_spinning")
        except RuntimeError:  # not set: ONNX Runtime's default
            return "default"

    assert spinning(cfg) == "default"  # analyze/transcribe: ONNX Runtime's default, spinning
    assert spinning(_service_tuned(cfg)) == "0"
    forced = cfg.model_copy(
        update={"recognizer": cfg.recognizer.model_copy(update={"onnx_spinning": True})}
    )
    assert _service_tuned(forced).recognizer.onnx_spinning is True
    assert cfg.results_fingerprint() == _service_tuned(cfg).results_fingerprint()  # same cache
