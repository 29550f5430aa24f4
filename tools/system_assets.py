"""Where this machine keeps the Debian programs and files that the tests and benches use.

Every path is found by looking, never assumed: Debian's asterisk prompts live in
``/usr/share/asterisk/sounds/en_US_f_Allison`` and only an optional package's postinst adds
the ``en`` link, PostgreSQL's server programs sit in a versioned ``/usr/lib/postgresql/<N>/bin``
that is not on PATH. A lookup that finds nothing raises :class:`MissingSystemAsset` naming the
Debian package to install, so a fresh machine fails with one line, not forty errors.

``python3 tools/system_assets.py`` checks everything at once; ``.ci/install`` ends with it.
Standard library only: it must run before (and without) the project's own dependencies.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# The two prompts the test calls are built from; a prompts directory must hold both.
PROMPT_PROBES = ("conf-invalid.wav", "vm-repeat.wav")


class MissingSystemAsset(RuntimeError):
    """A program or file the tests need is not on this machine; the message names the fix."""


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    package: str  # the Debian package that provides it


# Every external program the suite runs, with the Debian package that brings it.
PROGRAMS = (
    Program("ffmpeg", "ffmpeg"),
    Program("ffprobe", "ffmpeg"),
    Program("espeak-ng", "espeak-ng"),
    Program("chromium", "chromium"),
    Program("chromedriver", "chromium-driver"),
)


def program(name: str) -> str:
    """Absolute path of an external program on PATH."""
    pkg = next((p.package for p in PROGRAMS if p.name == name), name)
    found = shutil.which(name)
    if found is None:
        raise MissingSystemAsset(f"{name} not found on PATH: install the Debian package {pkg}")
    return found


def asterisk_prompts(root: Path = Path("/")) -> Path:
    """The directory of Debian's English asterisk prompts (WAV).

    ``CALLSENSE_ASTERISK_PROMPTS`` overrides; otherwise ``sounds/en`` if it holds the prompts,
    else any ``sounds/*`` directory that does (the WAV package's own ``en_US_f_Allison``).
    """
    override = os.environ.get("CALLSENSE_ASTERISK_PROMPTS")
    if override:
        return _with_prompts(Path(override), source="CALLSENSE_ASTERISK_PROMPTS")
    sounds = root / "usr/share/asterisk/sounds"
    candidates = [sounds / "en"]
    if sounds.is_dir():
        candidates += sorted(p for p in sounds.iterdir() if p.name.startswith("en"))
    for cand in candidates:
        if all((cand / probe).is_file() for probe in PROMPT_PROBES):
            return cand
    raise MissingSystemAsset(
        f"no directory under {sounds} holds {', '.join(PROMPT_PROBES)}: install the Debian "
        "packages asterisk-core-sounds-en and asterisk-core-sounds-en-wav"
    )


def _with_prompts(path: Path, *, source: str) -> Path:
    missing = [p for p in PROMPT_PROBES if not (path / p).is_file()]
    if missing:
        raise MissingSystemAsset(f"{source}={path} lacks {', '.join(missing)}")
    return path


def music_on_hold(root: Path = Path("/")) -> list[Path]:
    """Debian's music-on-hold WAV files, sorted by name (at least one)."""
    moh = root / "usr/share/asterisk/moh"
    files = sorted(moh.glob("*.wav")) if moh.is_dir() else []
    if not files:
        raise MissingSystemAsset(
            f"no WAV music-on-hold in {moh}: install the Debian package asterisk-moh-opsound-wav"
        )
    return files


def postgres_bin(root: Path = Path("/"), search_path: str | None = None) -> Path:
    """The directory holding PostgreSQL's ``initdb`` and ``pg_ctl`` (newest version first).

    ``CALLSENSE_PG_BIN`` overrides; then Debian's ``/usr/lib/postgresql/<N>/bin``; then PATH
    (``search_path`` or the environment's: other distributions put the server programs there).
    """
    override = os.environ.get("CALLSENSE_PG_BIN")
    if override:
        if not _is_pg_bin(Path(override)):
            raise MissingSystemAsset(f"CALLSENSE_PG_BIN={override} holds no initdb and pg_ctl")
        return Path(override)
    base = root / "usr/lib/postgresql"
    bins = [b for b in base.glob("*/bin") if re.fullmatch(r"\d+", b.parent.name)]
    for bin_dir in sorted(bins, key=lambda b: int(b.parent.name), reverse=True):
        if _is_pg_bin(bin_dir):
            return bin_dir
    on_path = shutil.which("initdb", path=search_path)
    if on_path and _is_pg_bin(Path(on_path).resolve().parent):
        return Path(on_path).resolve().parent
    raise MissingSystemAsset(
        f"no PostgreSQL server programs (initdb, pg_ctl) in {base}/<version>/bin or on PATH: "
        "install the Debian package postgresql"
    )


def _is_pg_bin(path: Path) -> bool:
    return all(os.access(path / name, os.X_OK) for name in ("initdb", "pg_ctl"))


def problems(root: Path = Path("/")) -> list[str]:
    """Every missing program or file, one line each (empty when the machine is ready)."""
    out: list[str] = []
    for prog in PROGRAMS:
        try:
            program(prog.name)
        except MissingSystemAsset as exc:
            out.append(str(exc))
    for lookup in (asterisk_prompts, music_on_hold, postgres_bin):
        try:
            lookup(root)
        except MissingSystemAsset as exc:
            out.append(str(exc))
    return out


def main() -> int:
    found = problems()
    for line in found:
        print(f"missing: {line}", file=sys.stderr)
    if not found:
        print(
            "system assets: ok (programs "
            + ", ".join(p.name for p in PROGRAMS)
            + f"; prompts {asterisk_prompts()}; music-on-hold {len(music_on_hold())} files; "
            f"PostgreSQL {postgres_bin()})"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
