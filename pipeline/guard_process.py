"""Guarding big posted transcripts in a child process at the lowest CPU priority.

A posted transcript may hold hundreds of KB of text (8,000 card numbers in 170 KB take
~0.1 s to redact). That is pure Python: in the service's process it holds the GIL and a
core that live calls need for their next decision. ``TranscriptGuard`` sends such a
transcript to one long-lived child (``python -m callsense.pipeline.guard_process``) that
runs the same ``PrivacyGuard`` at ``nice 19``, so the kernel gives live calls the CPU first;
small transcripts are guarded in place (a round trip costs more than they do).

The child is this module only: it imports the guard, not the service (a
``multiprocessing`` spawn would import the ``callsense`` command and with it everything).
Parent and child speak length-prefixed pickles over the child's stdin and stdout; both ends
are this code, nothing else writes there. The child inherits the environment, so the key of
``redaction.original_key_env`` is the parent's. A child that dies (killed, out of memory) is
replaced on the next transcript, which is tried once more.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, replace
from typing import IO, Any

from callsense.core.errors import CallsenseError
from callsense.pipeline.compliance import ComplianceConfig
from callsense.pipeline.model import CallTranscript, Utterance
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.redact import RedactionConfig

__all__ = ["INLINE_CHARS", "TranscriptGuard"]

log = logging.getLogger(__name__)

# Below this many characters of text and raw output a transcript is guarded in the calling
# thread: a few milliseconds, less than the child's round trip.
INLINE_CHARS = 32_000
_LENGTH = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class _Settings:
    """What the child needs to build the parent's guard."""

    compliance: ComplianceConfig
    redaction: RedactionConfig


class GuardProcessError(CallsenseError):
    """The child process could not guard a transcript (it died twice in a row)."""


def _send(stream: IO[bytes], obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("the other end closed the pipe")
    (size,) = _LENGTH.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the other end closed the pipe mid-message")
    return pickle.loads(data)


class TranscriptGuard:
    """``guard(transcript)``: the transcript with every utterance through ``PrivacyGuard``;
    big ones in the child. Thread-safe: transcripts take turns in the one child."""

    def __init__(self, guard: PrivacyGuard, *, inline_chars: int = INLINE_CHARS) -> None:
        self.guard = guard
        self.inline_chars = inline_chars
        self._settings = _Settings(guard.compliance, guard.redaction)
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def __call__(self, transcript: CallTranscript) -> CallTranscript:
        utterances = transcript.utterances
        size = sum(len(u.text) + len(u.raw) for u in utterances)
        if size < self.inline_chars or self.guard.redaction.mode == "off":
            guarded = tuple(map(self.guard, utterances))
        else:
            guarded = self._in_child(utterances)
        return replace(transcript, utterances=guarded)

    def _in_child(self, utterances: tuple[Utterance, ...]) -> tuple[Utterance, ...]:
        with self._lock:
            answer = self._ask(utterances)
            if answer is None:  # the child had died: a new one gets one more try
                answer = self._ask(utterances)
            if answer is None:
                raise GuardProcessError(
                    "the redaction process ended twice while guarding one transcript"
                )
        if isinstance(answer, str):  # the child's guard raised; the name, no text
            raise GuardProcessError(f"redaction failed in the guard process ({answer})")
        result: tuple[Utterance, ...] = answer
        return result

    def _ask(self, utterances: tuple[Utterance, ...]) -> Any:
        """The child's answer, or None if the child ended (it is then forgotten)."""
        child = self._child_now()
        assert child.stdin is not None and child.stdout is not None
        try:
            _send(child.stdin, utterances)
            return _receive(child.stdout)
        except (BrokenPipeError, EOFError):
            code = child.wait()
            self._child = None
            log.warning("guard process ended (exit %s); starting another", code)
            return None

    def _child_now(self) -> subprocess.Popen[bytes]:
        if self._child is None or self._child.poll() is not None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "callsense.pipeline.guard_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            assert self._child.stdin is not None
            _send(self._child.stdin, self._settings)
        return self._child

    @property
    def child_pid(self) -> int | None:
        """The child's pid while it runs (None before the first big transcript)."""
        child = self._child
        return child.pid if child is not None and child.poll() is None else None

    def close(self) -> None:
        """End the child (it exits when its stdin closes)."""
        with self._lock:
            child, self._child = self._child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            assert child.stdin is not None
            child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _child_main() -> None:
    """Guard transcripts until stdin closes. Stdout is the parent's pipe: anything a library
    prints goes to stderr instead."""
    with contextlib.suppress(OSError):
        os.nice(19)
    pipe_out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    pipe_in = sys.stdin.buffer
    settings: _Settings = _receive(pipe_in)
    guard = PrivacyGuard(settings)
    while True:
        try:
            utterances = _receive(pipe_in)
        except EOFError:
            return
        try:
            answer: object = tuple(map(guard, utterances))
        except Exception as exc:  # its name only: a message may quote the text
            answer = type(exc).__name__
        _send(pipe_out, answer)


if __name__ == "__main__":
    _child_main()
