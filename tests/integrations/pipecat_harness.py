"""A real Pipecat pipeline around a processor: a source that plays a recording as input
audio frames and a sink that keeps every frame with the time it arrived (for the tests and
``bench/integrations.py``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    StartFrame,
    UserAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

__all__ = ["Collector", "RecordingSource", "run_pipeline"]


class RecordingSource(FrameProcessor):
    """Plays mono PCM16 as ``frame_s`` input frames after the ``StartFrame``, paced at
    ``speed`` x real time, then asks the worker to end the pipeline (an ``EndFrame`` after
    every queued frame). ``sent`` keeps each frame and when it was pushed."""

    def __init__(
        self,
        pcm: bytes,
        sample_rate: int,
        *,
        frame_s: float = 0.02,
        speed: float = 1.0,
        user_id: str | None = None,
    ) -> None:
        super().__init__()
        self.pcm, self.sample_rate = pcm, sample_rate
        self.step = 2 * round(sample_rate * frame_s)
        self.frame_s, self.speed, self.user_id = frame_s, speed, user_id
        self.sent: list[tuple[float, InputAudioRawFrame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._play(), "play")

    def frame(self, chunk: bytes) -> InputAudioRawFrame:
        if self.user_id is None:
            return InputAudioRawFrame(chunk, self.sample_rate, 1)
        return UserAudioRawFrame(chunk, self.sample_rate, 1, user_id=self.user_id)

    async def _play(self) -> None:
        t0 = time.monotonic()
        for i, at in enumerate(range(0, len(self.pcm), self.step)):
            frame = self.frame(self.pcm[at : at + self.step])
            self.sent.append((time.monotonic(), frame))
            await self.push_frame(frame)
            wait = t0 + (i + 1) * self.frame_s / self.speed - time.monotonic()
            await asyncio.sleep(max(wait, 0.0))
        await self.push_frame(EndWorkerFrame())  # the worker ends the pipeline

    def frame_at(self, seconds: float) -> int:
        """Index of the frame holding call second ``seconds``."""
        return min(int(seconds / self.frame_s), len(self.sent) - 1)


class Collector(FrameProcessor):
    """The pipeline's end: every downstream frame, with its arrival time, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[float, Frame]] = []

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction is FrameDirection.DOWNSTREAM:
            self.frames.append((time.monotonic(), frame))
        await self.push_frame(frame, direction)

    def of(self, kind: type[Frame] | tuple[type[Frame], ...]) -> list[Frame]:
        return [f for _, f in self.frames if isinstance(f, kind)]

    def arrival(self, frame: Frame) -> float:
        return next(t for t, f in self.frames if f is frame)

    def index(self, frame: Frame) -> int:
        return next(i for i, (_, f) in enumerate(self.frames) if f is frame)


async def run_pipeline(processors: Sequence[FrameProcessor], sample_rate: int = 16000) -> None:
    """``processors`` as one Pipecat pipeline, run to its ``EndFrame``."""
    worker = PipelineWorker(
        Pipeline(list(processors)),
        params=PipelineParams(audio_in_sample_rate=sample_rate),
        cancel_on_idle_timeout=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()
