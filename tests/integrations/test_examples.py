"""The examples run offline on the keyed test model and the angry call, as the docs say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("example", ["pipecat_escalation.py", "livekit_agent.py"])
def test_example_escalates_the_angry_call(
    example: str, keyed_model_dir: Path, angry_call: tuple[Path, list]
) -> None:
    call, _ = angry_call
    args = [sys.executable, str(ROOT / "examples" / example), str(keyed_model_dir), str(call)]
    done = subprocess.run([*args, "--speed", "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "decision  angry-streak: escalate" in done.stdout
    assert "call summary: 3 utterances, 1 decisions" in done.stdout
