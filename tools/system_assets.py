"""Where this machine keeps the Debian programs and files that the tests and benches use.

Every path is found by looking, never assumed: Debian's asterisk prompts live in
``/usr/share/asterisk/sounds/en_US_f_Allison`` and only an optional package's postinst adds
the ``en`` link, PostgreSQL's server programs sit in a versioned ``/usr/lib/postgresql/<N>/bin``
that is not on PATH, Genesys's AudioHook reference implementation runs from a build folder that
``.ci/install`` prepares outside the repository. A lookup that finds nothing raises
:class:`MissingSystemAsset` naming the Debian package to install, so a fresh machine fails with
one line, not forty errors.

``python3 tools/system_assets.py`` checks everything at once; ``.ci/install`` ends with it.
Standard library only: it must run before (and without) the project's own dependencies.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The two prompts the test calls are built from; a prompts directory must hold both.
PROMPT_PROBES = ("conf-invalid.wav", "vm-repeat.wav")

# The AudioHook peer (a copy of ../shared/audiohook-reference with its npm dependencies): what
# the tests load from it, and the package files whose hash .ci/install stamps it with.
PEER_PROBES = (
    "app/audiohook/index.ts",  # the protocol library
    "client/src/clientwebsocket.ts",  # the client's signed WebSocket
    "test/audiohook-api-messages.test.ts",  # the jest protocol suite
    "node_modules/ts-node/package.json",
    "node_modules/jest/package.json",
    "node_modules/uuid/package.json",  # the library's dependency
    "client/node_modules/ws/package.json",
    "client/node_modules/typescript/package.json",
)
PEER_FILES = (
    "package.json",
    "package-lock.json",
    "app/package.json",
    "app/package-lock.json",
    "client/package.json",
    "client/package-lock.json",
)
PEER_STAMP = ".callsense-peer-stamp"


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
    Program("node", "nodejs"),
    Program("npm", "npm"),
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


def audiohook_peer(source: Path | None = None) -> Path:
    """The prepared AudioHook peer: ``CALLSENSE_PEER_DIR``, else
    ``~/.cache/callsense/audiohook-reference`` (where ``.ci/install`` builds it).

    It must hold what the tests load, and its stamp must match the package files of
    ``source`` (default: ``$CALLSENSE_SHARED/audiohook-reference``, else
    ``../shared/audiohook-reference``) when that is there: a changed reference needs a new install.
    """
    override = os.environ.get("CALLSENSE_PEER_DIR")
    peer = Path(override) if override else Path.home() / ".cache/callsense/audiohook-reference"
    fix = "run .ci/install (it needs the Debian packages nodejs and npm)"
    if not peer.is_dir():
        raise MissingSystemAsset(f"no AudioHook peer in {peer}: {fix}")
    missing = [p for p in PEER_PROBES if not (peer / p).is_file()]
    if missing:
        raise MissingSystemAsset(f"AudioHook peer {peer} lacks {', '.join(missing)}: {fix}")
    if source is None:
        shared = os.environ.get("CALLSENSE_SHARED")
        source = (Path(shared) if shared else ROOT.parent / "shared") / "audiohook-reference"
    if all((source / name).is_file() for name in PEER_FILES):
        stamp = peer / PEER_STAMP
        found = stamp.read_text().strip() if stamp.is_file() else ""
        if found != peer_stamp(source):
            raise MissingSystemAsset(
                f"AudioHook peer {peer} was not prepared from {source} as it is now: {fix}"
            )
    return peer


def peer_stamp(source: Path) -> str:
    """SHA-256 of the reference's package files, in order (as ``.ci/install`` computes it)."""
    digest = hashlib.sha256()
    for name in PEER_FILES:
        digest.update((source / name).read_bytes())
    return digest.hexdigest()


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
    try:
        audiohook_peer()
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
            f"PostgreSQL {postgres_bin()}; AudioHook peer {audiohook_peer()})"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
