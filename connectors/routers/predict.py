"""``POST /api/predict``: the seed's Gradio WebUI call (audio + language -> rich transcript),
so clients written against that page keep working.

Accepted: multipart ``audio`` (file) + ``language``; or Gradio's JSON
``{"data": [AUDIO, LANGUAGE], ...}`` where AUDIO is a ``data:audio/...;base64,`` URL, a
``{"name", "data": <data URL>}`` object (Gradio 3), or ``[sample_rate, samples]`` (the
``gr.Audio`` numpy form). Remote URLs are refused: the server never fetches.
The answer is Gradio's ``{"data": [TEXT]}``, TEXT the utterances' display text (event and
emotion shown as emoji, as the seed's page did) in time order.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel

from callsense.connectors.routers.common import (
    PROBLEM_RESPONSES,
    Problem,
    RuntimeDep,
    read_body,
    receive_multipart,
)
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import NotReadyError
from callsense.core.errors import InputError
from callsense.core.richtext import display_text
from callsense.pipeline.audio import SAMPLE_RATE, DecodedAudio, decode, resample
from callsense.pipeline.recognizer import LANGUAGES

__all__ = ["router"]

router = APIRouter(tags=["compatibility"], responses=PROBLEM_RESPONSES)


class PredictOut(BaseModel):
    data: list[str]
    is_generating: bool = False
    duration: float
    average_duration: float


def _unprocessable(detail: str) -> Problem:
    return Problem(422, "Unprocessable Content", detail)


def _data_url(value: str) -> bytes:
    head, sep, payload = value.partition(",")
    if not sep or not head.startswith("data:") or not head.endswith(";base64"):
        raise _unprocessable("audio: expected a data:audio/...;base64, URL (no remote URLs)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise _unprocessable("audio: the data URL is not valid base64") from None


def _numpy_audio(value: list[Any]) -> DecodedAudio:
    rate, samples = value[0], value[1]
    if not isinstance(rate, int) or not 1000 <= rate <= 192_000:
        raise _unprocessable("audio[0]: a sample rate between 1000 and 192000")
    try:
        arr = np.asarray(samples, dtype=np.float64)
    except (TypeError, ValueError):
        raise _unprocessable("audio[1]: a list of numbers (or of [left, right] pairs)") from None
    if arr.ndim == 2:
        arr = arr.mean(axis=1)
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
        raise _unprocessable("audio[1]: a non-empty list of finite numbers")
    if np.abs(arr).max() > 1.0:  # int16 samples, as gr.Audio sends them
        arr = arr / 32768.0
    mono = resample(arr.astype(np.float32), rate, SAMPLE_RATE)
    return DecodedAudio((mono,), SAMPLE_RATE, mono.size / SAMPLE_RATE, rate, 1, "pcm")


def _transcribe(runtime: Runtime, audio: DecodedAudio | Path, label: str, language: str) -> str:
    if isinstance(audio, Path):
        audio = decode(audio, runtime.cfg.audio, name=label)
    transcriber = runtime.transcriber_for(language)
    transcript = transcriber.transcribe_audio(audio, call_id="predict", source=label)
    return " ".join(t for u in transcript.utterances if (t := display_text(u.raw)))


@router.post("/api/predict", response_model=PredictOut)
async def predict(request: Request, runtime: RuntimeDep) -> PredictOut:
    """Audio + language in, SenseVoice rich transcript out (Gradio response shape)."""
    started = time.perf_counter()
    limit = runtime.settings.max_upload_bytes
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    tmp_path: Path | None = None
    try:
        if ctype == "multipart/form-data":
            upload = await receive_multipart(request, runtime.settings.data_dir / "tmp", limit)
            tmp_path = upload.path
            if upload.path is None or upload.size == 0:
                raise _unprocessable("audio: send the recording as a non-empty file field")
            language = upload.fields.get("language") or "auto"
            audio: DecodedAudio | Path = upload.path
            label = upload.filename or "upload"
        elif ctype == "application/json":
            body = await read_body(request, limit * 4 // 3 + 65536)
            try:
                payload = json.loads(body)
            except ValueError:
                raise Problem(400, "Bad Request", "the body is not valid JSON") from None
            data = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(data, list) or not data:
                raise _unprocessable('expected {"data": [audio, language]}')
            language = data[1] if len(data) > 1 and data[1] is not None else "auto"
            item = data[0]
            label = "audio"
            if isinstance(item, dict) and isinstance(item.get("data"), str):
                label = str(item.get("name") or "audio")[:255]
                item = item["data"]
            if isinstance(item, str):
                blob = _data_url(item)
                suffix = Path(label).suffix if Path(label).suffix.isascii() else ""
                tmp_dir = runtime.settings.data_dir / "tmp"
                tmp_dir.mkdir(parents=True, exist_ok=True)
                tmp_path = tmp_dir / f".predict-{time.time_ns()}{suffix[:9]}"
                tmp_path.write_bytes(blob)
                audio = tmp_path
            elif isinstance(item, list) and len(item) == 2:
                audio = _numpy_audio(item)
            else:
                raise _unprocessable("audio: a data URL, {name, data} or [sample_rate, samples]")
        else:
            raise Problem(415, "Unsupported Media Type", "send multipart/form-data or JSON")
        if not isinstance(language, str) or language not in LANGUAGES:
            raise _unprocessable(f"language: one of {', '.join(LANGUAGES)}")
        try:
            text = await asyncio.to_thread(_transcribe, runtime, audio, label, language)
        except NotReadyError as exc:
            raise Problem(
                503, "Service Unavailable", str(exc), headers={"Retry-After": "10"}
            ) from None
        except InputError as exc:
            raise _unprocessable(str(exc)) from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
    elapsed = time.perf_counter() - started
    runtime.metrics.stage_seconds.labels("predict").observe(elapsed)
    return PredictOut(data=[text], duration=elapsed, average_duration=elapsed)
