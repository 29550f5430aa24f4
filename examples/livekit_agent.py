"""callsense inside a LiveKit agent: SenseVoice as the agent's STT (detected language,
emotion and sound events in each transcript's metadata) and callsense's policies on every
final transcript, calling back when the caller should go to a human.

Offline (no LiveKit server, no API keys), the agent's STT path runs on a recording: LiveKit's
``StreamAdapter`` with its bundled silero VAD, as ``AgentSession`` wraps a non-streaming STT:

    python examples/livekit_agent.py MODEL_DIR CALL.wav [--speed 4]

In a room, ``SupportAgent`` is the agent (give it an LLM and a TTS) and ``entrypoint`` the
job: ``CALLSENSE_MODEL=MODEL_DIR python examples/livekit_agent.py dev`` with LiveKit's usual
``LIVEKIT_URL``/``LIVEKIT_API_KEY``/``LIVEKIT_API_SECRET``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator

import numpy as np
from livekit import rtc
from livekit.agents import Agent, AgentServer, AgentSession, JobContext, cli, stt
from livekit.agents.inference import VAD
from livekit.agents.voice import ModelSettings

from callsense.connectors.integrations.livekit import CallsensePolicies, CallsenseSTT
from callsense.pipeline.audio import decode
from callsense.pipeline.config import load_config
from callsense.pipeline.live import LiveEngine
from callsense.rules.model import Decision


class SupportAgent(Agent):
    """A support bot whose STT is callsense and whose policies can hand the caller off."""

    def __init__(self, engine: LiveEngine, call_id: str) -> None:
        super().__init__(
            instructions="You are a helpful support agent. Keep answers short.",
            stt=CallsenseSTT(engine),
            vad=VAD(),
        )
        self.policies = CallsensePolicies(engine, call_id, on_decision=self.decided)

    async def stt_node(
        self, audio: AsyncIterable[rtc.AudioFrame], model_settings: ModelSettings
    ) -> AsyncIterator[stt.SpeechEvent | str]:
        async for event in self.policies.stt_node(self, audio, model_settings):
            yield event

    async def decided(self, decision: Decision) -> None:
        if decision.action == "escalate":  # here: start a warm transfer to a human
            self.session.generate_reply(
                instructions="The caller is upset. Apologise briefly and say a colleague "
                "is joining the call."
            )


server = AgentServer()


@server.rtc_session()
async def entrypoint(ctx: JobContext) -> None:
    engine = LiveEngine.from_config(load_config(None))  # CALLSENSE_MODEL / CALLSENSE_CONFIG
    agent = SupportAgent(engine, call_id=ctx.room.name)
    session = AgentSession()

    async def finish() -> None:
        await agent.policies.close()

    ctx.add_shutdown_callback(finish)
    await session.start(agent=agent, room=ctx.room)


async def offline(engine: LiveEngine, pcm: bytes, speed: float) -> None:
    """The agent's STT node without a room: frames -> StreamAdapter(VAD) -> policies."""

    def escalate(decision: Decision) -> None:
        print(f"decision  {decision.rule}: {decision.action} {decision.params}")

    policies = CallsensePolicies(engine, "livekit-offline", on_decision=escalate)
    adapter = stt.StreamAdapter(stt=CallsenseSTT(engine), vad=VAD())

    async def room() -> AsyncIterator[rtc.AudioFrame]:
        for at in range(0, len(pcm) - 639, 640):
            yield rtc.AudioFrame(pcm[at : at + 640], 16000, 1, 320)
            await asyncio.sleep(0.02 / speed)

    async with adapter.stream() as stream:

        async def push() -> None:
            async for frame in policies.listen(room()):
                stream.push_frame(frame)
            stream.end_input()

        pusher = asyncio.create_task(push())
        async for event in stream:
            if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                data = event.alternatives[0]
                md = data.metadata or {}
                print(f"transcript lang={data.language} emotion={md.get('emotion')} "
                      f"event={md.get('event')} text={data.text!r}")  # fmt: skip
            await policies.feed(event)
        await pusher
    result = await policies.close()
    print(f"call summary: {result.summary['utterances']} utterances, "
          f"{len(result.decisions)} decisions")  # fmt: skip


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
        asyncio.run(offline(engine, pcm, args.speed))
    finally:
        engine.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("dev", "start", "connect", "console"):
        cli.run_app(server)
    else:
        main()
