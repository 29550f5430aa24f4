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

__all__ = ["import_funasr", "quiet"]

_import_lock = threading.Lock()


@contextlib.contextmanager
def quiet() -> Iterator[io.StringIO]:
    """Capture ``print`` output and hold back root-logger changes for the block.

    Yields the buffer that received stdout, so callers can inspect what funasr said.
    ``sys.stdout`` and the root logger are process-wide: hold the caller's model lock
    around this so two threads never swap them at the same time. During the block the
    root logger passes only errors, and a placeholder handler keeps ``basicConfig`` from
    installing its own; the previous level and handlers are restored afterwards.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    root.addHandler(logging.NullHandler())
    root.setLevel(max(level, logging.ERROR))
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield buf
    finally:
        root.setLevel(level)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)


def import_funasr() -> ModuleType:
    """Import funasr once (about 5 s), without its prints or its logging setup."""
    with _import_lock:
        if "funasr" not in sys.modules:
            with quiet():
                import funasr  # noqa: F401
        return sys.modules["funasr"]
