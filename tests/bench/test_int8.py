"""``backend: torch, quantize: int8``: loads straight into int8, same tags, lower peak RSS."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXED_MODEL_RAW, ROOT, TESTDATA

pytestmark = pytest.mark.model


def test_int8_torch_backend_gives_the_fixed_models_tags(fixed_model_dir: Path) -> None:
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    from callsense.pipeline.recognizer import build_recognizer
    from callsense.pipeline.sensevoice import RecognizerConfig
    from tools.test_clips import decode_audio

    cfg = RecognizerConfig(model=str(fixed_model_dir), backend="torch", quantize="int8")
    rec = build_recognizer(cfg)
    model = rec._am.model  # type: ignore[attr-defined]
    kinds = {type(m) for m in model.modules()}
    assert QLinear in kinds and nn.Linear not in kinds
    assert not any(p.is_meta for p in model.parameters())
    clip = decode_audio(TESTDATA / "ravdess_03-01-05-01-01-01-01.wav")
    results = rec.recognize([clip, clip[:8000], np.zeros(100, dtype=np.float32)])
    assert [r.raw for r in results] == [FIXED_MODEL_RAW, FIXED_MODEL_RAW, ""]
    assert results[0].confidence.emotion is not None and results[0].confidence.emotion > 0.9


def test_int8_load_refuses_a_checkpoint_of_another_size(
    fixed_model_dir: Path, tmp_path: Path
) -> None:
    from callsense.core.errors import InputError
    from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer

    other = tmp_path / "other"
    shutil.copytree(fixed_model_dir, other)
    conf = other / "config.yaml"
    text = conf.read_text(encoding="utf-8")
    conf.write_text(text.replace("linear_units: 128", "linear_units: 256"), encoding="utf-8")
    assert conf.read_text(encoding="utf-8") != text
    with pytest.raises(InputError, match=r"model\.pt: .* has shape .*config\.yaml asks for"):
        SenseVoiceRecognizer(RecognizerConfig(model=str(other), quantize="int8"))


_MEASURE = """
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[3])
from callsense.pipeline.quiet import import_funasr
import_funasr()
from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer
page = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20
base, peak, done = rss(), [0.0], threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], rss())
        time.sleep(0.001)
t = threading.Thread(target=sample)
t.start()
SenseVoiceRecognizer(RecognizerConfig(model=sys.argv[1], quantize=sys.argv[2], ncpu=1))
done.set()
t.join()
print(json.dumps({"peak_mb": max(peak[0], rss()) - base}))
"""


@pytest.mark.slow
def test_int8_load_peak_rss_is_below_the_fp32_load(tmp_path: Path) -> None:
    """Mid-size model (~150 MB fp32): each load in a fresh process, same run, compared.

    Each figure is the peak RSS while loading, above the RSS after ``import funasr``
    (sampled every millisecond), so funasr's own import peak does not hide it.
    """
    from bench._common import build_model_dir

    model = build_model_dir(tmp_path / "mid", {"num_blocks": 6, "tp_blocks": 2})
    fp32_mb = (model / "model.pt").stat().st_size / 2**20
    assert fp32_mb > 100
    peak = {}
    for quantize in ("none", "int8"):
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(model), quantize, str(ROOT)],
            capture_output=True,
            text=True,
            check=True,
        )
        peak[quantize] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mb"]
    # fp32 holds the checkpoint and the model at once (about twice the file); int8 never
    # holds a whole fp32 copy
    print(f"load peak above import: {peak} (fp32 file {fp32_mb:.0f} MB)")
    assert peak["int8"] + 0.5 * fp32_mb < peak["none"], (peak, fp32_mb)
