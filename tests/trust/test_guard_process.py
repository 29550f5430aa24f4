"""Big posted transcripts are redacted in a child process at the lowest CPU priority, with
the same result as in the service's process, and a child that dies is replaced."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from callsense.connectors.appconfig import AppConfig
from callsense.pipeline.guard_process import INLINE_CHARS, TranscriptGuard
from callsense.pipeline.model import CallTranscript, Utterance
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.redact import RedactionConfig, Redactor

CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004", "3782 822463 10005"]


def _transcript(chars: int, *, emotion: str = "ANGRY") -> CallTranscript:
    """Customer and agent turns naming card numbers until the text holds ``chars``."""
    utterances = []
    i = 0
    while sum(len(u.text) for u in utterances) < chars:
        card = CARDS[i % len(CARDS)]
        text = f"my card is {card}, write to me at a{i}@example.com please"
        speaker = "customer" if i % 2 == 0 else "agent"
        raw = f"<|en|><|{emotion}|><|Speech|><|withitn|>{text}"
        utterances.append(Utterance("big", i % 2, speaker, 2.0 * i, 2.0 * i + 1.5, "model",
                                    "en", emotion, "Speech", text, raw))  # fmt: skip
        i += 1
    return CallTranscript("big", tuple(utterances), duration=2.0 * i)


def _nice(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])  # field 19: nice


@pytest.fixture
def sealed(monkeypatch: pytest.MonkeyPatch) -> Iterator[TranscriptGuard]:
    """Redacted and original (sealed with a key from the environment, as users set it)."""
    monkeypatch.setenv("CALLSENSE_TEST_ORIGINAL_KEY", Fernet.generate_key().decode())
    cfg = AppConfig(
        redaction=RedactionConfig(
            mode="redacted_and_original", original_key_env="CALLSENSE_TEST_ORIGINAL_KEY"
        )
    )
    guard = TranscriptGuard(PrivacyGuard(cfg))
    yield guard
    guard.close()


def test_a_big_transcript_is_guarded_in_a_low_priority_child_as_in_process(
    sealed: TranscriptGuard,
) -> None:
    big = _transcript(INLINE_CHARS * 2)
    out = sealed(big)
    pid = sealed.child_pid
    assert pid is not None and pid != os.getpid()
    assert _nice(pid) == 19
    in_process = [sealed.guard(u) for u in big.utterances]
    assert [(u.text, u.raw) for u in out.utterances] == [(u.text, u.raw) for u in in_process]
    assert not any(c in u.text for u in out.utterances for c in CARDS)
    assert all("[CARD]" in u.text and "[EMAIL]" in u.text for u in out.utterances)
    # the agent's emotion is dropped (compliance default) in the child too
    assert {u.emotion for u in out.utterances if u.speaker == "agent"} == {None}
    # the originals are sealed with the parent's key: the parent opens them
    opener = Redactor(sealed.guard.redaction)
    first = out.utterances[0]
    assert first.original is not None and CARDS[0] in opener.decrypt_original(first.original)


def test_a_small_transcript_stays_in_process(sealed: TranscriptGuard) -> None:
    out = sealed(_transcript(200))
    assert sealed.child_pid is None
    assert "[CARD]" in out.utterances[0].text


def test_a_killed_child_is_replaced_and_the_transcript_still_guarded(
    sealed: TranscriptGuard,
) -> None:
    big = _transcript(INLINE_CHARS * 2)
    sealed(big)
    first = sealed.child_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    out = sealed(big)
    second = sealed.child_pid
    assert second is not None and second != first
    assert all("[CARD]" in u.text for u in out.utterances)


def test_close_ends_the_child(sealed: TranscriptGuard) -> None:
    sealed(_transcript(INLINE_CHARS * 2))
    pid = sealed.child_pid
    assert pid is not None
    sealed.close()
    assert sealed.child_pid is None
    assert not Path(f"/proc/{pid}").exists()  # exited and reaped
