"""The supervisor wall in a real browser: 8 live calls streamed at real time over
``/v1/stream`` (real recordings, the keyed test model), their escalations in the alert
queue, an acknowledgement that survives a reload, a viewer key that can watch and not edit,
and 50 calls at once through the real hub without the page falling behind.

Latencies are printed (``-s`` shows them), never asserted: the figure the issue asks for
(decision to alert on screen, p95 at 8 streams) is ``bench/live.py --wall``'s.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import load_app_config
from callsense.connectors.service_settings import ServiceSettings
from tests.calls import build_call, held_out
from tests.conftest import TESTDATA
from tests.live.client import Pacer, send_pcm
from tests.wall_sim import LoopCatcher, SimCalls, epoch_ms
from tests.web.conftest import serve
from tests.web.test_ui import shoot

pytestmark = [pytest.mark.slow]

ADMIN, VIEWER = "web-wall-test", "wallboard"
FRAME_BYTES = 8000 * 2 * 2 // 50  # 20 ms of 8 kHz stereo PCM16
CALM_TURNS = tuple(
    (("agent", "customer")[i % 2], held_out("B", 2 + i % 7)) for i in range(8)
)  # prompts only: no escalation, and longer than the angry call


@dataclass
class WallService:
    url: str
    keys: dict[str, str]
    sim: SimCalls

    def client(self, role: str = ADMIN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def _service(app: FastAPI, tmp: Path) -> Iterator[WallService]:
    keys = {ADMIN: app.state.runtime.keys.create(ADMIN),
            VIEWER: app.state.runtime.keys.create(VIEWER, "viewer")}  # fmt: skip
    catcher = LoopCatcher(app)
    with serve(catcher) as url:
        deadline = time.monotonic() + 120
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        yield WallService(url, keys, SimCalls(catcher))


@pytest.fixture(scope="module")
def model_wall(keyed_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("wall-model")
    cfg = load_app_config(None, model=str(keyed_model_dir))
    app = create_app(cfg, db_url=f"sqlite:///{tmp / 'callsense.db'}",
                     settings=ServiceSettings(data_dir=tmp / "data", scheduler=False))  # fmt: skip
    yield from _service(app, tmp)


@pytest.fixture(scope="module")
def light_wall(tmp_path_factory: pytest.TempPathFactory):
    """No models: the calls are driven through the hub as live sessions publish."""
    tmp = tmp_path_factory.mktemp("wall-light")
    app = create_app(load_app_config(None), db_url=f"sqlite:///{tmp / 'callsense.db'}",
                     load_models=False,
                     settings=ServiceSettings(data_dir=tmp / "data", scheduler=False))  # fmt: skip
    yield from _service(app, tmp)


def open_wall(page, svc: WallService, role: str = ADMIN) -> None:
    page.goto(svc.url + "/#/wall")
    page.fill("#api-key", svc.keys[role])
    page.click("#key-form button[type=submit]")
    page.wait_for_selector(f"#view-wall[data-role={'admin' if role == ADMIN else 'viewer'}]")


# --- 8 real streams ------------------------------------------------------------------------


def _pcm8k(path: Path) -> bytes:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-ac", "2", "-ar", "8000",
           "-f", "s16le", "-"]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True).stdout


@dataclass
class Streams:
    """Calls streamed from a thread at real time; when each decision message arrived."""

    url: str
    calls: dict[str, bytes]
    decided_ms: dict[str, list[float]] = field(default_factory=dict)
    ended: set[str] = field(default_factory=set)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=asyncio.run, args=(self._all(),), daemon=True)
        self.thread.start()

    def join(self, timeout: float = 180.0) -> None:
        assert self.thread is not None
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the streams did not finish"

    async def _all(self) -> None:
        await asyncio.gather(*(self._one(call_id, pcm, 0.2 * i)
                               for i, (call_id, pcm) in enumerate(self.calls.items())))  # fmt: skip

    async def _one(self, call_id: str, pcm: bytes, delay: float) -> None:
        from websockets.asyncio.client import connect

        await asyncio.sleep(delay)
        async with connect(self.url, max_size=None) as ws:
            start = {"type": "start", "call_id": call_id, "sample_rate": 8000, "channels": 2,
                     "encoding": "pcm16", "roles": {"0": "customer", "1": "agent"},
                     "language": "en"}  # fmt: skip
            await ws.send(json.dumps(start))

            async def read() -> None:
                async for raw in ws:
                    message = json.loads(raw)
                    if message["type"] == "decision" and message["action"] == "escalate":
                        self.decided_ms.setdefault(call_id, []).append(epoch_ms())
                    elif message["type"] == "end":
                        self.ended.add(call_id)

            reader = asyncio.create_task(read())
            await send_pcm(ws, pcm, FRAME_BYTES, Pacer())
            await ws.send(json.dumps({"type": "stop"}))
            await asyncio.wait_for(reader, 120)


def test_eight_live_calls_escalations_reach_the_queue_and_an_ack_survives_a_reload(
    page, model_wall: WallService, angry_call, tmp_path: Path
) -> None:
    angry = _pcm8k(angry_call[0])
    calm_path, _ = build_call(tmp_path / "calm.wav", CALM_TURNS, gap=2.5, testdata=TESTDATA)
    calm = _pcm8k(calm_path)
    kinds = (("angry", angry), ("calm", calm))
    calls = {f"wall-{kind}-{i}": pcm for i in range(4) for kind, pcm in kinds}
    key = model_wall.keys[ADMIN]
    url = model_wall.url.replace("http://", "ws://") + f"/v1/stream?api_key={key}"
    streams = Streams(url, calls)
    open_wall(page, model_wall)
    assert page.inner_text("#wall-empty") == "No call in progress."
    streams.start()

    # every call is on the wall while it streams, with its figures
    page.wait_for_function("() => document.querySelectorAll('#wall-calls tr').length === 8")
    escalations = page.locator("#wall-alerts li.alert-escalate")
    escalations.nth(3).wait_for(timeout=120_000)  # one per angry call, as each decides
    assert escalations.count() == 4
    assert {escalations.nth(i).get_attribute("data-call-id") for i in range(4)} == {
        f"wall-angry-{i}" for i in range(4)
    }
    assert page.locator("#wall-open").inner_text() == "4 open"
    hot = page.locator('#wall-calls tr[data-call-id="wall-angry-0"]')
    if hot.count():  # still streaming: its customer is angry and heated
        assert hot.locator(".tag.emo-ANGRY").count() == 1
        assert hot.locator(".badge.action-escalate").inner_text().lower() == "high"
    calm_row = page.locator('#wall-calls tr[data-call-id="wall-calm-3"]')
    assert calm_row.locator(".temp-now").inner_text() in ("0.00", "+0.00")  # neutral turns
    shoot(page, "wall.png")

    # how long each escalation took from its decision message to the screen (reported)
    shown = {escalations.nth(i).get_attribute("data-call-id"):
             float(escalations.nth(i).get_attribute("data-shown-at") or "nan")
             for i in range(4)}  # fmt: skip
    lags = sorted(shown[c] - streams.decided_ms[c][0] for c in shown if c in streams.decided_ms)
    print(f"\nwall: decision message -> alert on screen, 8 streams: {[round(x) for x in lags]} ms")

    # follow a call: the call page, which refreshes while it runs
    calm_row.locator("td").nth(4).click()
    page.wait_for_url("**/#/calls/wall-calm-3")
    page.wait_for_selector("#call-title:has-text('wall-calm-3')")

    # acknowledge an escalation; the acknowledgement is stored, and there after a reload
    page.goto(model_wall.url + "/#/wall")
    # the snapshot (with the key's role) first: buttons drawn before it are disabled
    page.wait_for_selector("#wall-state[data-kind='ok']")
    page.locator("#wall-alerts li.alert-escalate button.ack:enabled").first.wait_for()
    first = page.locator("#wall-alerts li.alert-escalate").first
    first.wait_for()
    alert_id = first.get_attribute("data-alert-id")
    first.locator("button.ack").click()
    acked = page.locator(f'#wall-acked li[data-alert-id="{alert_id}"]')
    acked.wait_for()
    assert f"Acknowledged by {ADMIN}" in acked.inner_text()
    page.reload()
    page.wait_for_selector("#view-wall[data-role=admin]")
    acked.wait_for()
    assert f"Acknowledged by {ADMIN}" in acked.inner_text()
    assert page.locator("#wall-alerts li.alert-escalate").count() == 3

    streams.join()
    assert streams.ended == set(calls)
    page.wait_for_selector("#wall-empty:not([hidden])")  # ended calls leave the wall
    with model_wall.client() as c:
        stored = c.get("/v1/alerts", params={"state": "all", "limit": 50}).json()
    ours = [a for a in stored if a["call_id"].startswith("wall-angry-")]
    assert len(ours) == 4 and {a["rule"] for a in ours} == {"angry-streak"}
    assert [a["acked_by"] for a in ours if a["id"] == alert_id] == [ADMIN]


def test_a_viewer_key_watches_the_wall_but_cannot_acknowledge_or_edit(
    page, model_wall: WallService
) -> None:
    sim = model_wall.sim
    sim.start("wall-viewer-1")
    sim.say("wall-viewer-1", "customer", "this is the third time", emotion="ANGRY")
    sim.decide("wall-viewer-1", "vip", "route", {"queue": "vip-desk"})
    open_wall(page, model_wall, VIEWER)
    alert = page.locator('#wall-alerts li[data-call-id="wall-viewer-1"]')
    alert.wait_for()
    assert alert.locator("button.ack").is_disabled()
    assert "watch only" in alert.inner_text()
    page.select_option("#wall-queue", "vip-desk")  # the filter keeps this call and alert
    assert page.locator('#wall-calls tr[data-call-id="wall-viewer-1"]').is_visible()
    assert alert.is_visible()
    page.select_option("#wall-priority", "urgent")
    assert alert.is_hidden()
    sim.end("wall-viewer-1")

    with model_wall.client() as c:
        before = c.get("/v1/policies/default").json()["text"]
    page.goto(model_wall.url + "/#/policies/default")
    page.wait_for_selector("#policy-validation[data-kind=ok]")  # checking a draft is allowed
    page.fill("#policy-text", before.replace("three consecutive", "3 consecutive"))
    page.click("#policy-save")
    page.wait_for_selector("#policy-save-status[data-kind=error]")
    assert "viewer key" in page.text_content("#policy-save-status")
    assert "viewer key" in page.text_content("#banner")
    with model_wall.client() as c:
        assert c.get("/v1/policies/default").json()["text"] == before


# --- 50 calls ------------------------------------------------------------------------------

N_CALLS, ROUNDS = 50, 12
EMOTIONS = ("NEUTRAL", "ANGRY", "HAPPY", "SAD")


def test_fifty_calls_at_once_the_page_keeps_up_and_loses_nothing(
    page, light_wall: WallService
) -> None:
    sim = light_wall.sim
    open_wall(page, light_wall)
    ids = [f"busy-{i:02d}" for i in range(N_CALLS)]
    for call_id in ids:
        sim.start(call_id)
    seq_shown = "() => Number(document.querySelector('#view-wall').dataset.seq || 0)"
    started = time.monotonic()
    backlog = []
    decisions: dict[str, int] = {}
    for r in range(ROUNDS):  # a round: every call says something; some decide
        for i, call_id in enumerate(ids):
            speaker = "customer" if (r + i) % 2 == 0 else "agent"
            emotion = EMOTIONS[(r * 7 + i) % 4] if speaker == "customer" else None
            sim.say(call_id, speaker, f"turn {r} of {call_id}", emotion=emotion, seconds=1.5)
            if r == 6 and i % 5 == 0:
                sim.decide(call_id, "angry-streak", "escalate", {"priority": "high"})
            elif r == 9 and i % 7 == 0:
                sim.decide(call_id, "to-billing", "route", {"queue": "billing"})
            else:
                continue
            decisions[call_id] = decisions.get(call_id, 0) + 1
        backlog.append(sim.seq() - page.evaluate(seq_shown))
    driven = time.monotonic() - started
    final = sim.seq()
    t0 = time.monotonic()
    page.wait_for_function(f"(n) => ({seq_shown})() >= n", arg=final)
    catch_up_ms = (time.monotonic() - t0) * 1000
    events = N_CALLS * ROUNDS + sum(decisions.values())
    print(f"\nwall, {N_CALLS} calls: {events} events in {driven:.1f} s ({events / driven:.0f}/s); "
          f"page behind by at most {max(backlog)} changes after a round; caught up "
          f"{catch_up_ms:.0f} ms after the last; snapshots resent: "
          f"{page.get_attribute('#view-wall', 'data-resent')}")  # fmt: skip

    rows = page.locator("#wall-calls tr")
    assert rows.count() == N_CALLS
    shown = page.evaluate(
        "() => [...document.querySelectorAll('#wall-calls tr')].map(r => [r.dataset.callId, "
        "Number(r.dataset.utterances), Number(r.dataset.decisions), "
        "r.querySelector('.last-text').textContent])"
    )
    assert shown == [[c, ROUNDS, decisions.get(c, 0), f"turn {ROUNDS - 1} of {c}"] for c in ids]
    assert page.locator("#wall-alerts li").count() == sum(decisions.values())
    routed = page.locator("#wall-alerts li.alert-route")
    assert routed.count() == len([i for i in range(N_CALLS) if i % 7 == 0])
    for call_id in ids:
        sim.end(call_id)
    page.wait_for_selector("#wall-empty:not([hidden])")
