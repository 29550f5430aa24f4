"""Machine lookups: found by looking, and a missing piece names the package that brings it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import shared_assets, system_assets

ROOT = Path(__file__).resolve().parents[2]


def _touch(path: Path, *, executable: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    if executable:
        path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CALLSENSE_ASTERISK_PROMPTS", "CALLSENSE_PG_BIN"):
        monkeypatch.delenv(name, raising=False)


def test_prompts_found_in_the_wav_package_directory_without_the_en_link(tmp_path: Path) -> None:
    # asterisk-core-sounds-en-wav alone: no sounds/en, only the package's own directory
    allison = tmp_path / "usr/share/asterisk/sounds/en_US_f_Allison"
    for probe in system_assets.PROMPT_PROBES:
        _touch(allison / probe)
    assert system_assets.asterisk_prompts(tmp_path) == allison
    # with the link's directory present it is preferred
    for probe in system_assets.PROMPT_PROBES:
        _touch(tmp_path / "usr/share/asterisk/sounds/en" / probe)
    assert system_assets.asterisk_prompts(tmp_path).name == "en"


def test_missing_prompts_name_the_packages(tmp_path: Path) -> None:
    _touch(tmp_path / "usr/share/asterisk/sounds/en/conf-invalid.wav")  # one probe only
    with pytest.raises(system_assets.MissingSystemAsset, match="asterisk-core-sounds-en-wav"):
        system_assets.asterisk_prompts(tmp_path)


def test_music_on_hold_needs_wav_files(tmp_path: Path) -> None:
    with pytest.raises(system_assets.MissingSystemAsset, match="asterisk-moh-opsound-wav"):
        system_assets.music_on_hold(tmp_path)
    song = _touch(tmp_path / "usr/share/asterisk/moh/song.wav")
    assert system_assets.music_on_hold(tmp_path) == [song]


def test_postgres_bin_takes_the_newest_complete_version(tmp_path: Path) -> None:
    base = tmp_path / "usr/lib/postgresql"
    for version in ("9", "15", "16"):
        _touch(base / version / "bin/initdb", executable=True)
    for version in ("9", "15"):
        _touch(base / version / "bin/pg_ctl", executable=True)
    # 16 lacks pg_ctl; 15 beats 9 numerically, not as text
    assert system_assets.postgres_bin(tmp_path, search_path="") == base / "15/bin"


def test_postgres_bin_falls_back_to_path_then_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(system_assets.MissingSystemAsset, match="package postgresql"):
        system_assets.postgres_bin(tmp_path, search_path=str(tmp_path / "nowhere"))
    bin_dir = tmp_path / "opt/pg/bin"
    _touch(bin_dir / "initdb", executable=True)
    _touch(bin_dir / "pg_ctl", executable=True)
    assert system_assets.postgres_bin(tmp_path, search_path=str(bin_dir)) == bin_dir


def test_missing_program_names_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(system_assets.MissingSystemAsset, match="Debian package chromium-driver"):
        system_assets.program("chromedriver")


def test_every_package_the_lookups_name_is_installed_by_ci_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The messages and .ci/install cannot drift apart: each named package is installed."""
    monkeypatch.setenv("PATH", "")
    install = (ROOT / ".ci" / "install").read_text(encoding="utf-8")
    block = re.search(r"APT_PACKAGES=\((.*?)\n\)", install, re.S)
    assert block is not None
    listed = {line.split("#")[0].strip() for line in block.group(1).splitlines()} - {""}
    named = {p.package for p in system_assets.PROGRAMS}
    for message in system_assets.problems(tmp_path):  # an empty machine: every lookup fails
        names = re.search(r"Debian packages? ([a-z0-9-]+(?: and [a-z0-9-]+)?)", message)
        assert names is not None, message
        named |= set(names.group(1).split(" and "))
    assert {"asterisk-core-sounds-en", "postgresql", "asterisk-moh-opsound-wav"} <= named
    assert named <= listed, named - listed
    assert "tools/system_assets.py" in install  # the install ends with the check


def test_check_script_fails_on_a_machine_without_the_packages(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "CALLSENSE_PG_BIN": str(tmp_path)}
    env["CALLSENSE_ASTERISK_PROMPTS"] = str(tmp_path)
    run = subprocess.run(
        [sys.executable, str(ROOT / "tools/system_assets.py")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert any("ffmpeg not found on PATH: install the Debian package ffmpeg" in x for x in lines)
    assert any("CALLSENSE_PG_BIN" in x for x in lines)


def test_a_test_run_without_shared_assets_stops_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "CALLSENSE_SHARED": str(tmp_path / "absent")}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/rules"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 4, out
    assert "shared test assets missing" in out and str(tmp_path / "absent") in out
    assert "error" not in out.lower().replace("exit:", "")  # no collection errors
    assert shared_assets.missing(tmp_path / "absent")


def test_shared_assets_present_here() -> None:
    assert shared_assets.missing() == []
