"""SenseVoice-Small through funasr: clips in, rich strings with per-tag confidence out.

The model is loaded once through ``funasr.AutoModel`` (a hub id on users' machines or a
local directory) and shared; calls are serialized by a lock. funasr's VAD and
``merge_vad`` are not used: callsense segments the call itself, and one clip must give
exactly one result, or rules that count utterances would count wrong.

SenseVoice decodes its tags as plain CTC tokens: output frames 0, 1 and 2 carry the
language, emotion and event (see funasr's ``SenseVoiceSmall.inference``). A forward hook on
``ctc.ctc_lo`` keeps those three frames' logits from the same forward pass that produced the
text, so a tag's confidence is the softmax probability of the token chosen at its frame.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from callsense.core.errors import InputError, RetryableError
from callsense.core.vocab import EMOTIONS, EVENTS
from callsense.core.vocab import LANGUAGES as LANGUAGE_TAGS
from callsense.pipeline.model import TagConfidence
from callsense.pipeline.quiet import import_funasr, quiet
from callsense.pipeline.recognizer import LANGUAGES, Recognition, Recognizer, RecognizerCapabilities

__all__ = ["MIN_SAMPLES", "RecognizerConfig", "SenseVoiceRecognizer", "build_recognizer"]

SAMPLE_RATE = 16000
# funasr's fbank needs at least one 25 ms window; shorter clips are not sent to the model.
MIN_SAMPLES = 400
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_TAG_GROUPS = {"lang": LANGUAGE_TAGS, "emotion": EMOTIONS, "event": EVENTS}


def _default_ncpu() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class RecognizerConfig(BaseModel):
    """How SenseVoice is loaded and called (the ``recognizer:`` section of callsense.yaml)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "iic/SenseVoiceSmall", description="model hub id, or a local model directory"
    )
    device: str = "cpu"
    ncpu: int = Field(default_factory=_default_ncpu, ge=1, description="torch threads")
    batch_size_s: float = Field(
        60.0, gt=0, description="clips are batched up to this many seconds of audio"
    )
    onnx_batch: int = Field(
        4,
        ge=1,
        le=64,
        description="onnx: clips per forward pass, length-sorted (4 ran 5-10% faster than 1 "
        "on 2 cores; larger batches pad more); a live call's segments go one at a time",
    )
    onnx_spinning: bool | None = Field(
        None,
        description="onnx: idle threads spin for the next work (fastest batch throughput); "
        "default: on for batch commands, off in callsense serve, where live calls' VAD needs "
        "the cores",
    )
    language: Literal["auto", "zh", "en", "yue", "ja", "ko"] = "auto"
    use_itn: bool = True
    ban_emo_unk: bool = False
    backend: Literal["torch", "onnx"] = Field(
        "torch", description="torch: funasr; onnx: ONNX Runtime on an exported model directory"
    )
    quantize: Literal["none", "int8"] = Field(
        "none",
        description="int8: onnx uses the signed-int8 export (callsense model export-onnx); "
        "torch quantizes nn.Linear to dynamic int8 while loading",
    )


class SenseVoiceRecognizer(Recognizer):
    """SenseVoice-Small via ``funasr.AutoModel``; one instance is shared by all callers.

    Clips shorter than ``MIN_SAMPLES`` (25 ms) are not recognized: they get
    ``Recognition(raw="")`` with no confidence, an abstention the parser reads as "no tags".
    A tag's confidence is None when its frame's best token is not a tag of that kind (a
    broken or untrained model). With ``ban_emo_unk`` the probabilities are those funasr
    decides on: EMO_UNKNOWN removed and the rest renormalized.
    AutoModel sets torch's thread count for the whole process to ``ncpu``.
    """

    def __init__(self, config: RecognizerConfig | None = None) -> None:
        self.config = config or RecognizerConfig()
        self._lock = threading.Lock()
        self._local = _local_model_dir(self.config.model)
        self.capabilities = RecognizerCapabilities(
            name=str(self._local) if self._local else self.config.model,
            confidence=True,
            batching=True,
        )
        self._am = self._load()
        self._frames: list[Any] = []
        self._am.model.ctc.ctc_lo.register_forward_hook(self._keep_tag_frames)
        self._tag_ids = self._tag_token_ids()
        self._emo_unk = self._tag_ids["emotion"]["EMO_UNKNOWN"]

    @property
    def model_id(self) -> str:
        """Hub id, or the directory plus model.pt's size and mtime (a rebuilt model differs)."""
        if self._local is None:
            return self.config.model
        stat = (self._local / "model.pt").stat()
        return f"{self._local}#{stat.st_size}-{stat.st_mtime_ns}"

    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str | None = None
    ) -> list[Recognition]:
        """One ``Recognition`` per clip, in input order; ``language`` None = the config's."""
        lang = self.config.language if language is None else language
        if lang not in LANGUAGES:
            raise InputError(f"language must be one of {', '.join(LANGUAGES)} (got {lang!r})")
        audio = [_as_clip(c, i) for i, c in enumerate(clips)]
        results = [Recognition(raw="")] * len(audio)
        todo = [i for i, a in enumerate(audio) if a.size >= MIN_SAMPLES]
        for batch in _batches(todo, [audio[i].size for i in todo], self.config.batch_size_s):
            for i, rec in zip(batch, self._run([audio[i] for i in batch], lang), strict=True):
                results[i] = rec
        return results

    def _run(self, clips: list[np.ndarray], language: str) -> list[Recognition]:
        # generate() prints nothing with disable_pbar; stdout stays untouched here, since
        # redirecting it would swallow other threads' output for the call's duration
        with self._lock:
            self._frames.clear()
            out = self._am.generate(
                input=clips,
                batch_size=len(clips),  # AutoModel would use 1 on CPU; the model pads a batch
                language=language,
                use_itn=self.config.use_itn,
                ban_emo_unk=self.config.ban_emo_unk,
            )
            frames = self._frames[0] if len(self._frames) == 1 else None
            self._frames.clear()
        if len(out) != len(clips) or frames is None or frames.shape[0] != len(clips):
            raise RuntimeError(f"funasr returned {len(out)} results for {len(clips)} clips")
        confidences = self._confidences(frames)
        return [
            Recognition(raw=str(r["text"]), confidence=c)
            for r, c in zip(out, confidences, strict=True)
        ]

    def _keep_tag_frames(self, _module: Any, _inputs: Any, output: Any) -> None:
        self._frames.append(output[:, :3, :].detach().float().clone())

    def _confidences(self, frames: Any) -> list[TagConfidence]:
        import torch

        if self.config.ban_emo_unk:  # the decision funasr makes; renormalize without it
            frames[:, :, self._emo_unk] = -float("inf")
        probs = torch.softmax(frames, dim=-1)
        best_p, best_id = probs.max(dim=-1)
        result = []
        for b in range(frames.shape[0]):
            conf = []
            for pos, group in enumerate(("lang", "emotion", "event")):
                token = int(best_id[b, pos])
                known = token in self._tag_ids[group].values()
                conf.append(float(best_p[b, pos]) if known else None)
            result.append(TagConfidence(*conf))
        return result

    def _tag_token_ids(self) -> dict[str, dict[str, int]]:
        tokenizer = self._am.kwargs["tokenizer"]
        ids: dict[str, dict[str, int]] = {}
        for group, tags in _TAG_GROUPS.items():
            ids[group] = {}
            for tag in tags:
                pieces = tokenizer.encode(f"<|{tag}|>")
                if len(pieces) != 1:
                    raise InputError(
                        f"{self.capabilities.name}: tokenizer has no <|{tag}|> token; "
                        "is this a SenseVoice model?"
                    )
                ids[group][tag] = int(pieces[0])
        return ids

    def _load(self) -> Any:
        import_funasr()
        from funasr import AutoModel

        where = self.capabilities.name
        with self._lock, quiet() as said:
            try:
                if self.config.quantize == "int8":
                    from callsense.pipeline.sensevoice_int8 import load_int8_automodel

                    am = load_int8_automodel(
                        where, device=self.config.device, ncpu=self.config.ncpu
                    )
                else:
                    am = AutoModel(
                        model=where,
                        disable_update=True,
                        device=self.config.device,
                        ncpu=self.config.ncpu,
                        disable_pbar=True,
                        ignore_init_mismatch=False,  # a wrong-size tensor fails, not stays random
                    )
            except InputError:
                raise
            except Exception as exc:
                raise self._load_error(exc, said.getvalue()) from exc
        printed = said.getvalue()
        missing = re.findall(r"miss key in ckpt: ([^,\s]+)", printed)
        if missing:
            raise InputError(
                f"{where}: model.pt lacks {len(missing)} weights the config asks for "
                f"(first: {', '.join(missing[:3])}); it was saved from a different model"
            )
        if "init_param does not exist" in printed:
            raise InputError(f"{where}: no model.pt weights file")
        if not _is_sensevoice(am.model):
            raise InputError(
                f"{where}: holds a {type(am.model).__name__} model, not SenseVoiceSmall"
            )
        return am

    def _load_error(self, exc: Exception, printed: str) -> Exception:
        where = self.capabilities.name
        if self._local is None and "Download" in printed and "failed" in printed:
            return RetryableError(
                f"could not download the SenseVoice model {where!r} from the model hub "
                "(no network?). Download it once where there is a network, or pass a local "
                "model directory: --model DIR, CALLSENSE_MODEL=DIR or recognizer.model in the "
                "config (python tools/make_test_model.py DIR builds a tiny test model)"
            )
        if "size mismatch" in str(exc):
            return InputError(f"{where}: model.pt does not match config.yaml: {_first_line(exc)}")
        return InputError(f"{where}: cannot load the model: {_first_line(exc)}")


def build_recognizer(config: RecognizerConfig) -> SenseVoiceRecognizer:
    """Load the configured SenseVoice model (once per process; share the result)."""
    return SenseVoiceRecognizer(config)


def _is_sensevoice(model: Any) -> bool:
    return any(c.__name__ == "SenseVoiceSmall" for c in type(model).__mro__)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:3]) if lines else type(exc).__name__
    return text[:400]


def _local_model_dir(model: str) -> Path | None:
    """A local model directory, checked before funasr mistakes it for a hub id.

    funasr treats any path that does not exist as a model-hub id and retries the download
    for about 20 s offline. Hub ids look like ``owner/name``; anything else that does not
    exist is a mistyped directory.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{model}: a SenseVoice model is a directory, not a file")
        missing = [n for n in ("config.yaml", "model.pt") if not (path / n).is_file()]
        if missing:
            raise InputError(f"{model}: not a SenseVoice model directory (no {', '.join(missing)})")
        return path.resolve()
    if model.startswith(("/", ".", "~")) or not _HUB_ID.match(model):
        raise InputError(f"{model}: model directory does not exist")
    return None


def _as_clip(clip: Any, index: int) -> np.ndarray:
    audio = np.asarray(clip, dtype=np.float32)
    if audio.ndim != 1:
        raise InputError(f"clip {index}: expected mono samples (1-D), got shape {audio.shape}")
    return audio


def _batches(indices: list[int], sizes: list[int], max_seconds: float) -> list[list[int]]:
    """Group clips so each batch holds at most ``max_seconds`` of audio (a longer clip alone).

    Longest first, so clips of similar length share a batch and padding stays small.
    """
    order = sorted(range(len(indices)), key=lambda j: -sizes[j])
    limit = max_seconds * SAMPLE_RATE
    batches: list[list[int]] = []
    total = 0
    for j in order:
        if not batches or total + sizes[j] > limit:
            batches.append([])
            total = 0
        batches[-1].append(indices[j])
        total += sizes[j]
    return batches
