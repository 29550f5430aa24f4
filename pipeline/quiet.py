"""Keep funasr's console noise out of callsense's own output.

funasr prints to stdout (``funasr version: …``, ``Warning, miss key in ckpt …``), and both
its import and every ``AutoModel(...)`` call ``logging.basicConfig(level=INFO)``, which
would turn every library's INFO log into stderr chatter for the whole process. The CLI's
stdout carries JSONL, so none of that may reach it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import TextIO

__all__ = ["import_funasr", "quiet"]

_import_lock = threading.Lock()
_state_lock = threading.Lock()
_local = threading.local()


class _Quieted:
    """What the first ``quiet`` block replaced, put back by the last one to end."""

    depth = 0
    stdout: TextIO | None = None
    level = logging.NOTSET
    handlers: list[logging.Handler] = []  # noqa: RUF012 (class-level state, one per process)


class _PerThreadStdout(io.TextIOBase):
    """``sys.stdout`` while any ``quiet`` block runs: a thread inside one writes to its own
    buffer, every other thread to the real stdout."""

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def write(self, text: str) -> int:
        buf: io.StringIO | None = getattr(_local, "buf", None)
        return (buf or self.real).write(text)

    def flush(self) -> None:
        if getattr(_local, "buf", None) is None:
            self.real.flush()


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Capture this thread's ``print`` output and hold back root-logger changes.

    Yields the buffer that received this thread's stdout, so callers can inspect what
    funasr said. Blocks may run in several threads at once (the VAD runs channels side by
    side): ``sys.stdout`` and the root logger are process-wide, so the first block to start
    swaps them and the last to end restores them. During the blocks the root logger passes
    only errors, and a placeholder handler keeps ``basicConfig`` from installing its own.
    """
    root = logging.getLogger()
    with _state_lock:
        if _Quieted.depth == 0:
            _Quieted.stdout = sys.stdout
            _Quieted.level, _Quieted.handlers = root.level, list(root.handlers)
            root.addHandler(logging.NullHandler())
            root.setLevel(max(root.level, logging.ERROR))
            sys.stdout = _PerThreadStdout(sys.stdout)  # type: ignore[assignment]
        _Quieted.depth += 1
    outer: io.StringIO | None = getattr(_local, "buf", None)
    buf = io.StringIO()
    _local.buf = buf
    try:
        yield buf
    finally:
        _local.buf = outer
        if outer is not None:
            outer.write(buf.getvalue())
        with _state_lock:
            _Quieted.depth -= 1
            if _Quieted.depth == 0:
                if _Quieted.stdout is not None:
                    sys.stdout = _Quieted.stdout
                root.setLevel(_Quieted.level)
                for handler in root.handlers[:]:
                    if handler not in _Quieted.handlers:
                        root.removeHandler(handler)


def import_funasr() -> ModuleType:
    """Import funasr once (about 5 s), without its prints or its logging setup."""
    with _import_lock:
        if "funasr" not in sys.modules:
            with quiet():
                import funasr  # noqa: F401
        return sys.modules["funasr"]
