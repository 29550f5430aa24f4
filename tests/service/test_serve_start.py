"""``callsense serve`` (a real process) refuses a wrong configuration at start: it exits
non-zero naming the file, line and field, instead of serving ``/readyz`` 503 forever or
quietly making a fresh database somewhere; models that cannot load stop it the same way
(issue 19)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FSMN_VAD_DIR, SENSEVOICE_FILES

pytestmark = pytest.mark.slow

START_S = 90.0  # imports and config on a busy machine; a healthy serve would outlive it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(tmp: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``serve`` with ``config``; a process still running after START_S fails the test."""
    path = tmp / "callsense.yaml"
    path.write_text(config, encoding="utf-8")
    cmd = [
        sys.executable, "-m", "callsense.connectors.cli", "serve",
        "--config", str(path), "--port", str(_free_port()),
        "--data-dir", str(tmp / "data"), *args,
    ]  # fmt: skip
    env = {**os.environ, "CALLSENSE_CACHE_DIR": str(tmp / "cache"), "COLUMNS": "200"}
    proc = subprocess.Popen(
        cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=START_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"serve kept running with a wrong config; it logged:\n{err[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def test_a_configured_policy_that_is_not_a_policy_stops_serve(tmp_path: Path) -> None:
    done = _serve(tmp_path, "policies: [/etc/passwd]\n", "--db", f"sqlite:///{tmp_path}/c.db")
    assert done.returncode != 0
    assert "/etc/passwd:1:" in done.stderr and "policy" in done.stderr


def test_a_database_in_a_missing_directory_is_refused_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    done = _serve(tmp_path, f"outbox:\n  db_url: sqlite:///{missing}/callsense.db\n")
    assert done.returncode != 0
    assert f"{missing} does not exist" in " ".join(done.stderr.split())
    assert not missing.exists()


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            "audio:\n  max_duration_s: 1e999999\n",
            "callsense.yaml:2: audio.max_duration_s: Input should be a finite number",
        ),
        (
            "retention:\n  days: 30\n  interval_s: .inf\n",
            "callsense.yaml:3: retention.interval_s: must be a finite number (got inf)",
        ),
    ],
    ids=["max_duration_s", "any-float"],
)
def test_an_infinite_number_in_the_config_stops_serve(
    tmp_path: Path, config: str, expected: str
) -> None:
    done = _serve(tmp_path, config, "--db", f"sqlite:///{tmp_path}/c.db")
    assert done.returncode != 0
    assert expected in " ".join(done.stderr.split())


def _corrupt_model(tmp: Path) -> Path:
    """SenseVoiceSmall's real config, tokenizer and CMVN around weights that are noise."""
    model = tmp / "corrupt-model"
    shutil.copytree(SENSEVOICE_FILES, model)
    (model / "model.pt").write_bytes(os.urandom(4096))
    return model


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda tmp: tmp / "no-such-model", "model directory does not exist"),
        (_corrupt_model, "cannot load the model"),
    ],
    ids=["missing", "corrupt"],
)
def test_models_that_cannot_load_stop_serve(tmp_path: Path, model, expected: str) -> None:
    """Loading happens after serve has started listening; it stops and says why."""
    done = _serve(
        tmp_path, "{}\n", "--db", f"sqlite:///{tmp_path}/c.db",
        "--model", str(model(tmp_path)), "--vad-model", str(FSMN_VAD_DIR),
    )  # fmt: skip
    said = " ".join(done.stderr.split())
    assert done.returncode == 2, said[-2000:]
    assert "error: the models could not be loaded, so serve stopped: InputError:" in said
    assert expected in said
