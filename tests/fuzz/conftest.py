"""Fuzz-suite bookkeeping: each target reports how many cases it tried and how many passed.

Tests get the ``fuzz_report`` fixture, call ``fuzz_report.add(target, tried, passed)``, and
the totals are printed at the end of the run (``pytest_terminal_summary``), so CI output
shows what the suite actually exercised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest


@dataclass(slots=True)
class FuzzReport:
    """Counts per fuzz target, in the order the targets ran."""

    rows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, target: str, tried: int, passed: int) -> str:
        """Record (accumulating over reruns) and return the ``tried N, passed M`` line."""
        old_tried, old_passed = self.rows.get(target, (0, 0))
        self.rows[target] = (old_tried + tried, old_passed + passed)
        line = f"fuzz {target}: tried {tried}, passed {passed}"
        print(line)
        return line


_REPORT = FuzzReport()


@pytest.fixture(scope="session")
def fuzz_report() -> FuzzReport:
    return _REPORT


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _REPORT.rows:
        return
    terminalreporter.section("fuzz summary")
    total_tried = total_passed = 0
    for target, (tried, passed) in _REPORT.rows.items():
        terminalreporter.write_line(f"{target:<36} tried {tried:>5}, passed {passed:>5}")
        total_tried += tried
        total_passed += passed
    terminalreporter.write_line(f"{'total':<36} tried {total_tried:>5}, passed {total_passed:>5}")
