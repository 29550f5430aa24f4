"""Benchmark redaction on texts with many entities: the old quadratic overlap check next to
the linear one, in one run (issue 19).

Run: ``python bench/redact.py [--sizes 1000,8000,64000] [--old-budget-s 60]`` (about a
minute). Each text holds N valid card numbers written ``4xxx xxxx xxxx xxxx``, laid out two
ways: ``separate`` (``, `` between cards: one digit run per card) and ``one-run`` (single
spaces: the whole text is one digit run of 4N groups, the case where the old code also
compared every hit with every group). ``old`` is the code before issue 19, kept here as a
subclass; it runs only while its projected time (quadratic from the size before) fits the
budget, and its entities are checked to be the same as the new code's. The last line is
``entities=<largest N> new_s=<seconds, one-run> old_s=<seconds or projection>``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callsense.pipeline import pii_patterns as pii  # noqa: E402
from callsense.pipeline.redact import Entity, EntityKind, Redactor  # noqa: E402

LAYOUTS = {"separate": ", ", "one-run": " "}


class OldRedactor(Redactor):
    """``Redactor`` as it was: each new entity compared with every one found, and each
    checked hit of a digit run with every group of the run."""

    __slots__ = ()

    def find(self, text: str) -> tuple[Entity, ...]:
        if self.cfg.mode == "off" or not text:
            return ()
        found: list[Entity] = []
        taken: list[tuple[int, int]] = []

        def add(kind: EntityKind, start: int, end: int) -> None:
            if kind in self.kinds and not any(s < end and start < e for s, e in taken):
                found.append(Entity(kind, start, end))
                taken.append((start, end))

        if "@" in text:
            for m in pii.EMAIL_RE.finditer(text):
                add("email", m.start(), m.end())
        for kind, start, end in self._ibans(text):
            add(kind, start, end)
        runs = [self._classify_run(text, m) for m in pii.RUN_RE.finditer(text)]
        for checked, _ in runs:
            for kind, start, end in checked:
                add(kind, start, end)
        if self.cfg.spelled_digits:
            for kind, start, end in self._spelled(text):
                add(kind, start, end)
        for _, phones in runs:
            for kind, start, end in phones:
                add(kind, start, end)
        found.sort(key=lambda e: e.start)
        return tuple(found)

    def _windows(
        self, text: str, groups: list[pii.DigitGroup], *, plus: bool, x_end: int | None
    ) -> tuple[list[pii.Hit], list[pii.Hit]]:
        n = len(groups)
        claimed = [False] * n
        hits = self._greedy(text, groups, 0, n, plus=plus, x_end=x_end, checked=True)
        phones: list[pii.Hit] = []
        for _kind, start, end in hits:
            for k, g in enumerate(groups):
                if start <= g.start and g.end <= end:
                    claimed[k] = True
        i = 0
        while i < n:
            if claimed[i]:
                i += 1
                continue
            j = i
            while j < n and not claimed[j]:
                j += 1
            phones += self._greedy(text, groups, i, j, plus=plus, x_end=x_end, checked=False)
            i = j
        return hits, phones


def card(rng: random.Random) -> str:
    body = "4" + "".join(str(rng.randrange(10)) for _ in range(14))
    number = next(body + d for d in "0123456789" if pii.luhn_valid(body + d))
    return " ".join(number[i : i + 4] for i in range(0, 16, 4))


def timed(redactor: Redactor, text: str) -> tuple[float, tuple[Entity, ...]]:
    started = time.perf_counter()
    entities = redactor.find(text)
    return time.perf_counter() - started, entities


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,8000,64000")
    parser.add_argument("--old-budget-s", type=float, default=60.0)
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    rng = random.Random(19)
    cards = [card(rng) for _ in range(max(sizes))]
    new, old = Redactor(), OldRedactor()
    print(f"# python {sys.version.split()[0]}; old = the overlap checks before issue 19")
    print(f"{'entities':>8}  {'layout':<8} {'chars':>9} {'old_s':>9} {'new_s':>7} {'speedup':>8}")
    last: dict[str, tuple[int, float]] = {}
    summary = ""
    for n in sizes:
        for layout, sep in LAYOUTS.items():
            text = sep.join(cards[:n])
            new_s, entities = timed(new, text)
            assert len(entities) == n and all(e.kind == "card" for e in entities), layout
            prev = last.get(layout)
            projected = prev[1] * (n / prev[0]) ** 2 if prev else 0.0
            if projected <= args.old_budget_s:
                old_s, old_entities = timed(old, text)
                assert old_entities == entities, f"{layout} {n}: old and new differ"
                last[layout] = (n, old_s)
                old_text, ratio = f"{old_s:.3f}", f"{old_s / new_s:.0f}x"
            else:
                old_s = projected
                old_text, ratio = f"~{projected:.0f}*", f"~{projected / new_s:.0f}x"
            print(f"{n:>8}  {layout:<8} {len(text):>9} {old_text:>9} {new_s:>7.3f} {ratio:>8}")
            if layout == "one-run":
                summary = f"entities={n} new_s={new_s:.3f} old_s={old_s:.1f}"
    print("# * projected from the size before (quadratic), not run: over --old-budget-s")
    print(summary)


if __name__ == "__main__":
    main()
