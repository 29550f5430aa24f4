"""The hostile-load benchmark's attacks (``bench/hostile.py``), run in the attacker's process.

Each attack is one attempt (a coroutine given the target and the attempt's number) that
returns what came back: HTTP statuses, WebSocket close codes and reasons, refusals.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.service.hostile_audio import silent_wav, surround_silence_flac

ATTACK_START_S = 2.0  # the honest calls have all started by then
IDLE_SOCKETS = 500
CARDS = 8000
HUGE_TEXT_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Target:
    """Where the attacker sends: the service's base URL, its key, prepared files."""

    base: str
    key: str
    flac_bomb: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def ws(self, path: str) -> str:
        return self.base.replace("http://", "ws://") + f"{path}?api_key={self.key}"


Attack = Callable[[Target, int], Awaitable[list[str]]]


async def _upload(target: Target, n: int, name: str, data: bytes) -> list[str]:
    import httpx

    async with httpx.AsyncClient(headers=target.headers, timeout=300) as client:
        resp = await client.post(
            f"{target.base}/v1/calls",
            files={"audio": (name, data, "application/octet-stream")},
            data={"call_id": f"hostile-{name.replace('.', '-')}-{n}"},
        )
    return [str(resp.status_code)]


async def _post_json(target: Target, body: bytes) -> list[str]:
    import httpx

    async with httpx.AsyncClient(headers=target.headers, timeout=300) as client:
        resp = await client.post(
            f"{target.base}/v1/calls",
            content=body,
            headers={"Content-Type": "application/json"},
        )
    return [str(resp.status_code)]


def _luhn_card(rng: random.Random) -> str:
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit right of these
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    return " ".join(text[i : i + 4] for i in range(0, 16, 4))


async def flac_bomb(target: Target, n: int) -> list[str]:
    return await _upload(target, n, "bomb.flac", target.flac_bomb.read_bytes())


async def zero_wav(target: Target, n: int) -> list[str]:
    return await _upload(target, n, "zero.wav", silent_wav(1, 0))


async def wav_99ch(target: Target, n: int) -> list[str]:
    return await _upload(target, n, "many.wav", silent_wav(99, 1600))


async def huge_utterance(target: Target, n: int) -> list[str]:
    text = "refund " * (HUGE_TEXT_BYTES // 7)
    utterance = {"channel": 0, "speaker": "customer", "start": 0.0, "end": 1.0, "text": text}
    body = json.dumps({"call_id": f"hostile-huge-{n}", "utterances": [utterance]})
    return await _post_json(target, body.encode())


async def cards_8k(target: Target, n: int) -> list[str]:
    rng = random.Random(n)
    per_utterance = 800  # 16,800 characters: under core.wire.MAX_TEXT_CHARS
    utterances = [
        {"channel": 0, "speaker": "customer", "start": 2.0 * i, "end": 2.0 * i + 1.5,
         "text": ", ".join(_luhn_card(rng) for _ in range(per_utterance))}
        for i in range(CARDS // per_utterance)
    ]  # fmt: skip
    body = json.dumps({"call_id": f"hostile-cards-{n}", "utterances": utterances})
    return await _post_json(target, body.encode())


async def log_forging(target: Target, n: int) -> list[str]:
    import httpx

    async with httpx.AsyncClient(headers=target.headers, timeout=60) as client:
        resp = await client.get(f"{target.base}/v1/policies/x%0Ay")
    return [str(resp.status_code)]


async def _until_closed(ws: Any, timeout_s: float) -> str:
    from websockets.exceptions import ConnectionClosed

    try:
        async with asyncio.timeout(timeout_s):
            while True:
                await ws.recv()
    except ConnectionClosed:
        words = (ws.close_reason or "").split()
        reason = " ".join(words[2:6] if words[:1] == ["call"] else words[:4])
        return f"closed {ws.close_code} '{reason}'"
    except TimeoutError:
        return "still open"


async def twilio_jump(target: Target, n: int) -> list[str]:
    from websockets.asyncio.client import connect

    from tests.live.client import twilio_messages

    silence = b"\xff" * 160  # 20 ms of mu-law silence per track
    messages = twilio_messages(silence, silence, call_sid=f"CA{n:032x}")
    jump = json.loads(messages[-2])  # the inbound frame, 3,600,000 ms on
    jump["sequenceNumber"] = str(int(jump["sequenceNumber"]) + 2)
    jump["media"] |= {"chunk": "2", "timestamp": "3600000"}
    async with connect(target.ws("/v1/twilio")) as ws:
        for message in [*messages, json.dumps(jump)]:
            await ws.send(message)
        return [await _until_closed(ws, 30.0)]


async def idle_sockets(target: Target, n: int) -> list[str]:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def hold() -> str:
        try:
            async with connect(target.ws("/v1/stream"), open_timeout=60) as ws:
                return await _until_closed(ws, 60.0)
        except InvalidStatus as exc:
            return f"refused {exc.response.status_code}"

    return list(await asyncio.gather(*(hold() for _ in range(IDLE_SOCKETS))))


ATTACKS: dict[str, Attack] = {
    "flac-bomb": flac_bomb,
    "huge-utterance": huge_utterance,
    "twilio-jump": twilio_jump,
    "cards-8k": cards_8k,
    "idle-sockets": idle_sockets,
    "log-forging": log_forging,
    "zero-wav": zero_wav,
    "wav-99ch": wav_99ch,
}


def run_attack(
    name: str, target: Target, seconds: float, every: float
) -> tuple[int, Counter[str], float]:
    """Send attack ``name`` over and over for ``seconds`` (from ``ATTACK_START_S``); how many
    attempts, what came back (counted), and the CPU seconds the attacker spent."""
    answers: Counter[str] = Counter()
    attempts = 0
    cpu_before = cpu_s()

    async def main() -> None:
        nonlocal attempts
        await asyncio.sleep(ATTACK_START_S)
        end = time.monotonic() + seconds
        while (began := time.monotonic()) < end:
            attempts += 1
            try:
                answers.update(await ATTACKS[name](target, attempts))
            except Exception as exc:  # a refusal the client did not expect is an answer too
                answers[type(exc).__name__] += 1
            await asyncio.sleep(max(0.0, began + every - time.monotonic()))

    asyncio.run(main())
    return attempts, answers, cpu_s() - cpu_before


def cpu_s() -> float:
    """User and system CPU seconds of this process so far."""
    t = os.times()
    return t.user + t.system


def lower_priority(niceness: int) -> None:
    """The attack process's initializer: its CPU is the attacker's, not the service's."""
    os.nice(niceness)


def flac_bomb_file(path: Path) -> Path:
    """An hour of 7.1 silence at 48 kHz as FLAC: 1.3 MB that is 2.8 GB as 16-bit PCM."""
    return surround_silence_flac(path, 3600)
