"""The front half of the flow: a call's audio -> VAD segments -> SenseVoice -> utterances.

``Transcriber`` holds the shared models (one VAD, one recognizer) and turns one call into a
``CallTranscript``. Live streaming reuses ``utterance_from`` for each segment VAD closes.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from callsense.core.richtext import parse_one
from callsense.pipeline.audio import DecodedAudio, decode, speaker_for
from callsense.pipeline.config import CallsenseConfig
from callsense.pipeline.model import CallTranscript, Segment, Speaker, TagConfidence, Utterance
from callsense.pipeline.recognizer import Recognition, Recognizer
from callsense.pipeline.vad import Vad

__all__ = ["SOUND_EVENTS", "Transcriber", "call_id_for", "utterance_from"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Events that describe a sound rather than speech: a segment tagged with one and holding no
# text is a "sound" segment (laughter, a cough, music) whatever the VAD thought.
SOUND_EVENTS = frozenset(
    {"BGM", "Applause", "Laughter", "Cry", "Sneeze", "Breath", "Cough", "Sing", "GBG", "Event_UNK"}
)


def call_id_for(path: Path) -> str:
    """A call id from a file name: readable stem plus a short hash of the full path."""
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem}-{digest}"


def utterance_from(
    segment: Segment,
    recognition: Recognition,
    *,
    call_id: str,
    speaker: Speaker,
    cfg: CallsenseConfig,
) -> Utterance:
    """Build one utterance from a VAD segment and SenseVoice's string for it.

    Tags below the configured confidence abstain (``EMO_UNKNOWN`` / ``Event_UNK``); the
    segment is a ``sound`` when SenseVoice heard no speech in it, a ``speech`` when it heard
    speech with text, and otherwise keeps the VAD's verdict. This is what the model heard:
    the call's session guards it (compliance gate, redaction) before anything sees it.
    """
    group = parse_one(recognition.raw)
    conf = recognition.confidence
    emotion, event = group.emotion, group.event
    thresholds = cfg.confidence
    if emotion is not None and conf.emotion is not None and conf.emotion < thresholds.emotion_min:
        emotion = "EMO_UNKNOWN"
    if event is not None and conf.event is not None and conf.event < thresholds.event_min:
        event = "Event_UNK"
    text = group.text.strip()
    if event == "Speech" and text:
        source = "speech"
    elif group.lang == "nospeech" or (not text and event in SOUND_EVENTS):
        source = "sound"
    else:
        source = segment.source
    utterance = Utterance(
        call_id=call_id,
        channel=segment.channel,
        speaker=speaker,
        start=round(segment.start, 3),
        end=round(segment.end, 3),
        source=source,
        lang=group.lang,
        emotion=emotion,
        event=event,
        text=text,
        raw=recognition.raw,
        confidence=TagConfidence(conf.lang, conf.emotion, conf.event),
        unknown_tags=group.unknown_tags,
    )
    return utterance


@dataclass(slots=True)
class Transcriber:
    """One call at a time through shared models; thread-safe as far as the models are."""

    cfg: CallsenseConfig
    vad: Vad
    recognizer: Recognizer

    def transcribe_file(
        self, path: Path, *, call_id: str | None = None, name: str | None = None
    ) -> CallTranscript:
        """Decode and transcribe one file (what the model heard: a ``CallSession`` guards
        it before anything is stored; ``pipeline.analyze.analyze_file`` caches that).

        ``name`` is what errors and the transcript's ``source`` call the file: its name by
        default, not where it sits (a service's copies sit in a directory its clients must
        not learn); the CLI passes the path as the user gave it."""
        label = name or path.name
        audio = decode(path, self.cfg.audio, name=label)
        return self.transcribe_audio(audio, call_id=call_id or call_id_for(path), source=label)

    def segments(self, audio: DecodedAudio) -> list[Segment]:
        """VAD, segmentation rules and speech/sound marks, per channel; all channels in the
        order the segments end (a live call's stages get them in that order too).

        Channels run in parallel threads: the VAD models release the GIL in their kernels,
        so a stereo call's VAD takes about 40% less wall time on two cores (10.5 -> 6.4 s
        on bench/pipeline.py's 10-minute call).
        """

        def one(index: int) -> list[Segment]:
            return self.vad.segments(
                audio.channels[index],
                audio.sample_rate,
                channel=index,
                segmentation=self.cfg.segmentation,
            )

        n = len(audio.channels)
        workers = min(n, os.cpu_count() or 1)
        if workers > 1:
            with ThreadPoolExecutor(workers, thread_name_prefix="callsense-vad") as pool:
                per_channel = list(pool.map(one, range(n)))
        else:
            per_channel = [one(i) for i in range(n)]
        out = [seg for segs in per_channel for seg in segs]
        out.sort(key=lambda s: (s.end, s.channel))  # the order they end, as live hears them
        return out

    def transcribe_audio(
        self, audio: DecodedAudio, *, call_id: str, source: str | None = None
    ) -> CallTranscript:
        segments = self.segments(audio)
        clips = [_clip(audio.channels[s.channel], s, audio.sample_rate) for s in segments]
        recognitions = self.recognizer.recognize(clips, language=self.cfg.recognizer.language)
        n_channels = len(audio.channels)
        utterances = tuple(
            utterance_from(
                seg,
                rec,
                call_id=call_id,
                speaker=speaker_for(seg.channel, n_channels, self.cfg.audio),
                cfg=self.cfg,
            )
            for seg, rec in zip(segments, recognitions, strict=True)
        )
        log.info(
            "call %s: %d segments, %.1f s of audio, %d channel(s)",
            call_id,
            len(segments),
            audio.duration,
            n_channels,
        )
        return CallTranscript(
            call_id=call_id,
            utterances=utterances,
            duration=round(audio.duration, 3),
            channels=n_channels,
            source=source,
        )


def _clip(samples: np.ndarray, segment: Segment, sample_rate: int) -> np.ndarray:
    start = max(0, round(segment.start * sample_rate))
    end = min(len(samples), round(segment.end * sample_rate))
    return np.ascontiguousarray(samples[start:end], dtype=np.float32)


def build_transcriber(cfg: CallsenseConfig, *, recognizer: Recognizer | None = None) -> Transcriber:
    """Load the configured VAD and recognizer once; the result is shared by every call.

    ``recognizer`` replaces the configured one (a gateway's remote model tier).
    """
    from callsense.pipeline.recognizer import build_recognizer
    from callsense.pipeline.vad import build_vad

    if recognizer is None:  # first: its errors name the model the user gave
        recognizer = build_recognizer(cfg.recognizer)
    return Transcriber(cfg=cfg, vad=build_vad(cfg.vad), recognizer=recognizer)
