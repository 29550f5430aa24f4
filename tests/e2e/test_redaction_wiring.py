"""PII is redacted as an utterance enters its call session, so nothing downstream (stages,
files, store, webhooks) sees it, whatever brought the utterance."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from callsense.connectors.appconfig import AppConfig
from callsense.pipeline.events import UtteranceEvent
from callsense.pipeline.model import Segment, Utterance
from callsense.pipeline.privacy import PrivacyGuard
from callsense.pipeline.recognizer import Recognition
from callsense.pipeline.records import record_from_utterance, utterance_from_record
from callsense.pipeline.redact import RedactionConfig
from callsense.pipeline.session import CallFlow
from callsense.pipeline.transcribe import utterance_from

RAW = "<|en|><|ANGRY|><|Speech|><|withitn|>my card is 4111 1111 1111 1111 and mail a.b@example.com"


def _utt(cfg: AppConfig, guard: PrivacyGuard) -> Utterance:
    heard = utterance_from(
        Segment(channel=0, start=1.0, end=3.0),
        Recognition(RAW),
        call_id="c",
        speaker="customer",
        cfg=cfg,
    )
    flow = CallFlow((), cfg, guard)
    session = flow.open("c")
    (event,) = session.feed(heard)
    assert isinstance(event, UtteranceEvent)
    (stored,) = session.close(3.0)[-1].result.transcript.utterances  # type: ignore[union-attr]
    assert stored == event.utterance
    return event.utterance


def test_default_config_redacts_text_and_raw_keeping_tags() -> None:
    cfg = AppConfig()
    utt = _utt(cfg, PrivacyGuard(cfg))
    assert "4111" not in utt.text and "example.com" not in utt.text
    assert "[CARD]" in utt.text and "[EMAIL]" in utt.text
    assert utt.raw.startswith("<|en|><|ANGRY|><|Speech|><|withitn|>") and "4111" not in utt.raw
    assert (utt.emotion, utt.event) == ("ANGRY", "Speech")
    assert utt.original is None
    assert "original" not in record_from_utterance(utt)


def test_redacted_and_original_seals_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CALLSENSE_PII_KEY", key)
    cfg = AppConfig(
        redaction=RedactionConfig(
            mode="redacted_and_original", original_key_env="CALLSENSE_PII_KEY"
        )
    )
    guard = PrivacyGuard(cfg)
    utt = _utt(cfg, guard)
    record = record_from_utterance(utt)
    assert "4111" not in json.dumps(record["text"]) and record["original"]
    sealed = json.loads(guard.redactor.decrypt_original(record["original"]))
    assert "4111 1111 1111 1111" in sealed["text"] and sealed["raw"] == RAW
    assert utterance_from_record(record).original == record["original"]  # survives the cache


def test_mode_off_keeps_text() -> None:
    cfg = AppConfig(redaction=RedactionConfig(mode="off"))
    assert "4111 1111 1111 1111" in _utt(cfg, PrivacyGuard(cfg)).text
