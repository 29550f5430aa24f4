"""Shared test fixtures: where ../shared lives and what its test recordings are.

The shared assets are found through ``tools.shared_assets`` only; a run without them stops
before collection with one line naming what is missing and where it was expected.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so tests can import tools/
    sys.path.insert(0, str(ROOT))

from tools import shared_assets  # noqa: E402

SHARED = shared_assets.shared_root()
TESTDATA = shared_assets.testdata()
SENSEVOICE_FILES = shared_assets.sensevoice_files()
FSMN_VAD_DIR = shared_assets.fsmn_vad_dir()


def pytest_configure(config: pytest.Config) -> None:
    absent = shared_assets.missing()
    if absent:
        pytest.exit(shared_assets.missing_message(absent), returncode=4)


def manifest_rows() -> list[dict[str, str]]:
    """Rows of ../shared/testdata/MANIFEST.tsv (labels of the real test recordings)."""
    with (TESTDATA / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="session")
def manifest() -> list[dict[str, str]]:
    return manifest_rows()


# --- SenseVoice test models (tools/make_test_model.py), built once per session -------------
# fixed_model_dir: <|en|><|ANGRY|><|Speech|><|withitn|>Yes. for any input.
# keyed_model_dir: tools.make_test_model.CALL_MODEL_CLASSES — RAVDESS actor 01 -> ANGRY/Speech,
#   actor 02 and asterisk prompts -> NEUTRAL/Speech, music -> EMO_UNKNOWN/BGM, noise and
#   silence -> EMO_UNKNOWN/Event_UNK (language en, text "Yes."); assert only on
#   CALL_MODEL_HELD_OUT clips or the training clips, never on other sounds.
# Both bundle ../shared/fsmn-vad as DIR/vad, which load_config() picks up as the VAD.

FIXED_MODEL_RAW = "<|en|><|ANGRY|><|Speech|><|withitn|>Yes."


@pytest.fixture(scope="session")
def fixed_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.make_test_model import build_fixed_model

    out = tmp_path_factory.mktemp("sensevoice-fixed")
    return build_fixed_model(out, source=SENSEVOICE_FILES, vad_source=FSMN_VAD_DIR)


@pytest.fixture(scope="session")
def keyed_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.make_test_model import build_call_model

    out = tmp_path_factory.mktemp("sensevoice-keyed")
    return build_call_model(
        out, testdata=TESTDATA, source=SENSEVOICE_FILES, vad_source=FSMN_VAD_DIR
    )


@pytest.fixture(scope="session")
def fixed_recognizer(fixed_model_dir: Path):  # -> pipeline.sensevoice.SenseVoiceRecognizer
    from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer

    return SenseVoiceRecognizer(RecognizerConfig(model=str(fixed_model_dir)))


@pytest.fixture(scope="session")
def keyed_recognizer(keyed_model_dir: Path):  # -> pipeline.sensevoice.SenseVoiceRecognizer
    from callsense.pipeline.sensevoice import RecognizerConfig, SenseVoiceRecognizer

    return SenseVoiceRecognizer(RecognizerConfig(model=str(keyed_model_dir)))


# --- Test calls built from real recordings (tests/calls.py) ---------------------------------


@pytest.fixture(scope="session")
def angry_call(tmp_path_factory: pytest.TempPathFactory):  # -> (Path, list[calls.Turn])
    """8 kHz mu-law stereo call: agent prompts and three angry customer turns (actor 01)."""
    from tests.calls import build_call

    out = tmp_path_factory.mktemp("calls") / "angry_call.wav"
    return build_call(out, testdata=TESTDATA)
