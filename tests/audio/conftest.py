"""Audio fixtures: test calls built with real ffmpeg from real recordings, VAD models once.

The built stereo call puts two Debian asterisk prompts on separate channels at known times:
the customer (left) speaks from ``CUSTOMER_AT`` s, the agent (right) from ``AGENT_AT`` s.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from callsense.pipeline.vad import FsmnVad, SileroVad, VadConfig
from tests.conftest import FSMN_VAD_DIR
from tools import system_assets

CUSTOMER_PROMPT = "conf-invalid.wav"
AGENT_PROMPT = "vm-repeat.wav"
CUSTOMER_AT = 0.5
AGENT_AT = 6.0
CALL_S = 10.0


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


@dataclass(frozen=True)
class BuiltCall:
    path: Path
    customer: tuple[float, float]  # where each voice is, in seconds
    agent: tuple[float, float]


def asterisk_prompt(name: str) -> Path:
    """One of Debian's asterisk prompts; a missing one fails naming the package to install."""
    path = system_assets.asterisk_prompts() / name
    if not path.is_file():
        pytest.fail(f"{path} missing: reinstall Debian's asterisk-core-sounds-en-wav")
    return path


def _build_call(out: Path, *codec_args: str) -> BuiltCall:
    customer, agent = asterisk_prompt(CUSTOMER_PROMPT), asterisk_prompt(AGENT_PROMPT)
    ms_c, ms_a = int(CUSTOMER_AT * 1000), int(AGENT_AT * 1000)
    ffmpeg(
        "-i", str(customer), "-i", str(agent),
        "-filter_complex",
        f"[0]adelay={ms_c},apad=whole_dur={CALL_S}[c];"
        f"[1]adelay={ms_a},apad=whole_dur={CALL_S}[a];"
        "[c][a]join=inputs=2:channel_layout=stereo[out]",
        "-map", "[out]", "-t", str(CALL_S), *codec_args, str(out),
    )  # fmt: skip
    return BuiltCall(
        path=out,
        customer=(CUSTOMER_AT, CUSTOMER_AT + wav_seconds(customer)),
        agent=(AGENT_AT, AGENT_AT + wav_seconds(agent)),
    )


@pytest.fixture(scope="session")
def stereo_call(tmp_path_factory: pytest.TempPathFactory) -> BuiltCall:
    """16-bit 8 kHz stereo WAV: customer left, agent right."""
    out = tmp_path_factory.mktemp("calls") / "stereo_call.wav"
    return _build_call(out, "-ar", "8000", "-c:a", "pcm_s16le")


@pytest.fixture(scope="session")
def mulaw_call(tmp_path_factory: pytest.TempPathFactory) -> BuiltCall:
    """The same call as G.711 μ-law at 8 kHz, the way telephony recorders store it."""
    out = tmp_path_factory.mktemp("calls") / "mulaw_call.wav"
    return _build_call(out, "-ar", "8000", "-c:a", "pcm_mulaw")


@pytest.fixture(scope="session")
def fsmn_vad() -> FsmnVad:
    return FsmnVad(VadConfig(model=str(FSMN_VAD_DIR)))


@pytest.fixture(scope="session")
def silero_vad() -> SileroVad:
    return SileroVad(VadConfig(engine="silero"))
