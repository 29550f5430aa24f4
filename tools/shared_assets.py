"""The one place tests, benches and tools learn where the shared test assets are.

The assets (real recordings, SenseVoiceSmall's non-weight files, FunASR's FSMN-VAD) are not in
this repository: their licenses allow testing, not redistribution. They sit in ``../shared``
next to the checkout (``CALLSENSE_SHARED`` overrides), as this repository's CI provides them;
``tools/fetch_test_assets.py`` downloads them from their pinned upstream sources for anyone
else. :func:`missing` lets the test run stop at once with one line when they are absent.
Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Per asset folder, the files whose absence means the folder is not there at all.
REQUIRED: dict[str, tuple[str, ...]] = {
    "testdata": ("MANIFEST.tsv",),
    "sensevoice": (
        "am.mvn",
        "chn_jpn_yue_eng_ko_spectok.bpe.model",
        "config.yaml",
        "configuration.json",
    ),
    "fsmn-vad": ("am.mvn", "config.yaml", "configuration.json", "model.pt"),
}


def shared_root() -> Path:
    """``$CALLSENSE_SHARED`` or the ``shared`` folder beside the repository."""
    override = os.environ.get("CALLSENSE_SHARED")
    return Path(override) if override else ROOT.parent / "shared"


def testdata() -> Path:
    """The real recordings and their labels (``MANIFEST.tsv``)."""
    return shared_root() / "testdata"


def sensevoice_files() -> Path:
    """SenseVoiceSmall's tokenizer, config and CMVN (no weights)."""
    return shared_root() / "sensevoice"


def fsmn_vad_dir() -> Path:
    """FunASR's FSMN-VAD model directory."""
    return shared_root() / "fsmn-vad"


def missing(root: Path | None = None) -> list[Path]:
    """Every required asset file that is not there (empty when all are)."""
    base = shared_root() if root is None else root
    return [
        base / folder / name
        for folder, names in REQUIRED.items()
        for name in names
        if not (base / folder / name).is_file()
    ]


def missing_message(paths: list[Path]) -> str:
    """One line for a test run that cannot start."""
    folders = sorted({p.parent for p in paths})
    return (
        f"shared test assets missing: {', '.join(str(f) for f in folders)} "
        f"({len(paths)} required files absent, e.g. {paths[0].name}); set CALLSENSE_SHARED or "
        "run tools/fetch_test_assets.py (see README, 'Set up and test')"
    )
