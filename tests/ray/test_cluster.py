"""On a real local Ray (one per module): Serve batching across calls, and an archive run
killed midway then resumed, compared file by file with local analyze."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from tests.conftest import ROOT, TESTDATA
from tests.ray import helpers
from tests.ray.conftest import listening_outside_loopback

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SOURCES = (
    "ravdess_03-01-05-01-01-01-01.wav",
    "ravdess_03-01-05-02-01-01-01.wav",
    "ravdess_03-01-01-01-01-01-01.wav",
    "ravdess_03-01-05-02-02-01-01.wav",
)
N_FILES = 200


def _decode(path: Path) -> np.ndarray:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "1", "-ar", "16000"]
    raw = subprocess.run([*cmd, "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.float32)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """N distinct recordings: 1-3 turns of RAVDESS speech, each file at its own gain."""
    clips = [_decode(TESTDATA / name) for name in SOURCES]
    gap = np.zeros(16000, dtype=np.float32)
    out = tmp_path_factory.mktemp("archive")
    files = []
    for i in range(N_FILES):
        turns = [clips[(i + k) % len(clips)] for k in range(1 + i % 3)]
        audio = np.concatenate([gap, *(np.concatenate([t, gap]) for t in turns)])
        audio = np.clip(audio * (0.5 + 0.02 * i), -1, 1)
        path = out / f"call{i:03d}.wav"
        wavfile.write(path, 16000, (audio * 32767).astype(np.int16))
        files.append(path)
    return files


def test_serve_batches_utterances_of_concurrent_calls(local_ray: Path) -> None:
    from ray import serve

    from callsense.pipeline.distributed.config import RayConfig
    from callsense.pipeline.distributed.serve_recognizer import RemoteRecognizer, deploy
    from callsense.pipeline.sensevoice import RecognizerConfig

    local_ray.write_text("")
    cfg = RayConfig(
        recognizer_factory="tests.ray.helpers:loudness_factory",
        ray_actor_options={"num_cpus": 0.5},
        batch={"max_batch_size": 8, "batch_wait_timeout_s": 0.05},
        app_name="batching",
    )
    handle = deploy(cfg, RecognizerConfig(model="unused"))
    try:
        remote = RemoteRecognizer(handle, timeout_s=30)
        rng = np.random.default_rng(3)
        clips = [
            (rng.standard_normal(3200) * (0.2 if i % 3 else 0.01)).astype(np.float32)
            for i in range(12)
        ]
        assert remote.recognize(clips, language="en") == [helpers.loudness(c) for c in clips]
        passes = helpers.read_counter(local_ray)
        assert sum(n for _, n, _ in passes) == 12
        assert len(passes) < 12, "no two utterances shared a forward pass"
        assert max(n for _, n, _ in passes) > 1
        assert remote.retried == 0
    finally:
        serve.delete("batching")


def _cache_entries(cache: Path) -> int:
    return sum(1 for _ in cache.glob("??/*.jsonl"))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def test_archive_killed_midway_resumes_without_recognizing_twice(
    local_ray: Path, archive: list[Path], fixed_model_dir: Path, tmp_path: Path
) -> None:
    import ray

    local_ray.write_text("")
    cache = tmp_path / "cache"
    out = tmp_path / "out-ray"
    ray_yaml = tmp_path / "ray.yaml"
    ray_yaml.write_text(
        f"address: {ray.get_runtime_context().gcs_address}\n"
        "namespace: callsense-test\n"
        "recognizer_factory: tests.ray.helpers:counting_sensevoice\n"
        "archive:\n"
        "  recognizer_actors: 2\n"
        "  analyzer_actors: 1\n"
        "  batch_size: 1\n"
        "  resources: {num_cpus: 0.5}\n"
        "  analyzer_num_cpus: 0.5\n"
    )
    env = {**os.environ, "CALLSENSE_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "callsense.connectors.cli",
        "analyze",
        *map(str, archive),
        "--engine",
        "ray",
        "--ray-config",
        str(ray_yaml),
        "--model",
        str(fixed_model_dir),
        "--out",
        str(out),
        "--no-tts",
    ]

    driver = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 150
    while _cache_entries(cache) < N_FILES // 4:
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:] if driver.stderr else ""
        assert time.monotonic() < deadline, "the archive run made no progress"
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    # the job's actors die with their driver; wait until nothing more lands in the cache
    settled = -1
    while settled != _cache_entries(cache):
        settled = _cache_entries(cache)
        time.sleep(1.5)
    assert 0 < settled < N_FILES, f"kill came too late: {settled} of {N_FILES} done"
    first = helpers.read_counter(local_ray)
    local_ray.write_text("")

    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr.decode()[-3000:]
    second = helpers.read_counter(local_ray)
    # only the files without a stored result were recognized again
    assert len(second) == N_FILES - settled
    assert _cache_entries(cache) == N_FILES
    # at most the in-flight batches of the killed run (2 actors x 1 call) were redone
    digests = [d for _, _, d in first + second]
    assert len(set(digests)) == N_FILES
    assert len(digests) - N_FILES <= 2

    local_out = tmp_path / "out-local"
    from callsense.connectors.cli import app

    result = CliRunner().invoke(
        app,
        [
            "analyze",
            *map(str, archive),
            "--model",
            str(fixed_model_dir),
            "--out",
            str(local_out),
            "--no-tts",
            "--no-cache",
        ],
    )
    assert result.exit_code == 0, result.output
    ray_tree, local_tree = _tree(out), _tree(local_out)
    assert len([k for k in local_tree if k.endswith("summary.json")]) == N_FILES
    assert ray_tree.keys() == local_tree.keys()
    assert ray_tree == local_tree
    assert any(b"escalate" in v for k, v in local_tree.items() if k.endswith("decisions.jsonl"))


def test_ray_listens_on_loopback_only(local_ray: Path) -> None:
    assert listening_outside_loopback() == []
