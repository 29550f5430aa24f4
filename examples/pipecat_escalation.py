"""callsense inside a Pipecat bot: the caller's emotion, sound events, detected language and
escalation decisions as frames, and the bot told when the caller has been angry too long.

In a real bot the processor sits right after the transport's input::

    Pipeline([transport.input(), callsense, stt, user_aggregator, llm, tts,
              transport.output(), assistant_aggregator])

Offline, this plays a recording's first channel (the customer) as the transport would and
prints what the rest of the pipeline receives. No network, no API keys:

    python examples/pipecat_escalation.py MODEL_DIR CALL.wav [--speed 4]

MODEL_DIR is a SenseVoiceSmall directory (or ``iic/SenseVoiceSmall`` where the model hub is
reachable); the tests' keyed model and angry call show an escalation.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import numpy as np
from pipecat.frames.frames import (
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
    LLMMessagesAppendFrame,
    StartFrame,
    TTSSpeakFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

from callsense.connectors.integrations.pipecat import (
    CallsenseDecisionFrame,
    CallsenseEndFrame,
    CallsenseProcessor,
    CallsenseUtteranceFrame,
    ContextReaction,
    HandoffReaction,
    PipecatConfig,
)
from callsense.pipeline.audio import decode
from callsense.pipeline.config import load_config
from callsense.pipeline.live import LiveEngine

REACTIONS = PipecatConfig(
    reactions=(
        ContextReaction(),  # the LLM learns the caller is upset, and why
        HandoffReaction(say="I'm connecting you with a colleague now."),
    )
)


class RecordingInput(FrameProcessor):
    """Stands in for ``transport.input()``: 20 ms input audio frames of a recording."""

    def __init__(self, pcm: bytes, speed: float) -> None:
        super().__init__()
        self.pcm, self.speed = pcm, speed

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self.create_task(self._play(), "play")

    async def _play(self) -> None:
        t0, step = time.monotonic(), 640
        for i, at in enumerate(range(0, len(self.pcm), step)):
            await self.push_frame(InputAudioRawFrame(self.pcm[at : at + step], 16000, 1))
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 / self.speed - time.monotonic()))
        await self.push_frame(EndWorkerFrame())


class Show(FrameProcessor):
    """Stands in for the rest of the bot: prints what callsense adds to the pipeline."""

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, CallsenseUtteranceFrame):
            print(f"utterance {frame.start:6.2f}-{frame.end:6.2f} s  lang={frame.language} "
                  f"emotion={frame.emotion} event={frame.event} text={frame.text!r}")  # fmt: skip
        elif isinstance(frame, CallsenseDecisionFrame):
            print(f"decision  {frame.rule}: {frame.action} {frame.params}")
        elif isinstance(frame, LLMMessagesAppendFrame):
            print(f"to the LLM context: {frame.messages[0]['content']}")
        elif isinstance(frame, TTSSpeakFrame):
            print(f"the bot says: {frame.text}")
        elif isinstance(frame, CallsenseEndFrame):
            print(f"call summary: {frame.result.summary['utterances']} utterances, "
                  f"{len(frame.result.decisions)} decisions")  # fmt: skip
        await self.push_frame(frame, direction)


async def run(engine: LiveEngine, pcm: bytes, speed: float) -> None:
    callsense = CallsenseProcessor(engine, config=REACTIONS)
    worker = PipelineWorker(
        Pipeline([RecordingInput(pcm, speed), callsense, Show()]),
        params=PipelineParams(audio_in_sample_rate=16000),
        cancel_on_idle_timeout=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="SenseVoiceSmall model directory")
    parser.add_argument("call", help="a recording; its first channel is the customer")
    parser.add_argument("--speed", type=float, default=1.0, help="x real time (default 1)")
    args = parser.parse_args()
    engine = LiveEngine.from_config(load_config(None, model=args.model))
    try:
        samples = decode(args.call).channels[0]
        pcm = np.clip(np.round(samples * 32768), -32768, 32767).astype("<i2").tobytes()
        asyncio.run(run(engine, pcm, args.speed))
    finally:
        engine.close()


if __name__ == "__main__":
    main()
