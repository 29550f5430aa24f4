"""Shared test fixtures: where ../shared lives and what its test recordings are."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTDATA = SHARED / "testdata"
SENSEVOICE_FILES = SHARED / "sensevoice"
FSMN_VAD_DIR = SHARED / "fsmn-vad"

if str(ROOT) not in sys.path:  # so tests can import tools/
    sys.path.insert(0, str(ROOT))


def manifest_rows() -> list[dict[str, str]]:
    """Rows of ../shared/testdata/MANIFEST.tsv (labels of the real test recordings)."""
    with (TESTDATA / "MANIFEST.tsv").open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="session")
def manifest() -> list[dict[str, str]]:
    return manifest_rows()
