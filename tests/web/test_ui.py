"""The web UI in a real browser against the real app: upload, timeline, calls list, policies.

The service runs for real (uvicorn on 127.0.0.1, SQLite, the keyed test SenseVoice model);
Debian's chromium is driven by Playwright. Screenshots of the main views are rewritten in
docs/screenshots/ only when CALLSENSE_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.calls import build_call, held_out
from tests.conftest import TESTDATA
from tests.web.conftest import ROOT, SCREENSHOTS, serve, update_screenshots

pytestmark = [pytest.mark.model, pytest.mark.slow]

ANALYSIS_TIMEOUT_MS = 120_000


@dataclass(frozen=True)
class Service:
    url: str
    key: str
    app: Any

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )


@pytest.fixture(scope="module")
def service(keyed_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from callsense.connectors.app import create_app
    from callsense.connectors.appconfig import load_app_config
    from callsense.connectors.service_settings import ServiceSettings

    tmp = tmp_path_factory.mktemp("web-service")
    cfg = load_app_config(None, model=str(keyed_model_dir))
    app = create_app(
        cfg,
        db_url=f"sqlite:///{tmp / 'callsense.db'}",
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False),
    )
    with serve(app) as url:
        key = app.state.runtime.keys.create("web-ui-test")
        deadline = time.monotonic() + 120
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service never became ready"
            time.sleep(0.2)
        yield Service(url, key, app)


def wait_done(svc: Service, call_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with svc.client() as c:
        while True:
            call = c.get(f"/v1/calls/{call_id}").json()
            if call["status"] in ("done", "failed"):
                return call
            assert time.monotonic() < deadline, f"call {call_id} still {call['status']}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def calm_call(service: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A call that does not escalate (neutral turns only), posted through the API."""
    turns = (("agent", held_out("B", 2)), ("customer", held_out("B", 3)))
    path, _ = build_call(tmp_path_factory.mktemp("calm") / "calm_call.wav", turns,
                         testdata=TESTDATA)  # fmt: skip
    with service.client() as c, path.open("rb") as fh:
        r = c.post("/v1/calls", files={"audio": (path.name, fh, "audio/wav")})
    assert r.status_code == 202, r.text
    call_id = r.json()["id"]
    assert wait_done(service, call_id)["status"] == "done"
    return call_id


def enter_key(page, svc: Service, path: str = "/") -> None:
    page.goto(svc.url + path)
    page.fill("#api-key", svc.key)
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#key-state:has-text('key saved')")


def shoot(page, name: str) -> None:
    if update_screenshots():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_refused_without_a_key_says_so(page, service: Service) -> None:
    page.goto(service.url + "/#/calls")
    page.wait_for_selector("#banner:not([hidden])")
    assert "API key" in page.text_content("#banner")
    page.fill("#api-key", "csk_000000000000_not-a-real-key")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#calls-empty:has-text('Could not load calls')")
    assert "refused" in page.text_content("#banner")


def test_upload_shows_the_angry_customer_and_the_escalation(page, service, angry_call) -> None:
    path, timeline = angry_call
    enter_key(page, service, "/#/calls")
    page.set_input_files("#upload-file", str(path))
    page.select_option("#upload-language", "en")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(re.compile(r".*#/calls/call_[0-9a-f]+$"))
    page.wait_for_selector("#call-status[data-kind=ok]", timeout=ANALYSIS_TIMEOUT_MS)
    call_id = page.url.rsplit("/", 1)[1]

    # the API has what the page shows
    with service.client() as c:
        call = c.get(f"/v1/calls/{call_id}").json()
    assert call["language"] == "en"

    customer_turns = [t for t in timeline if t.speaker == "customer"]
    agent_turns = [t for t in timeline if t.speaker == "agent"]
    customer = page.locator('.lane[data-speaker="customer"] .utt')
    angry = page.locator('.lane[data-speaker="customer"] .utt[data-emotion="ANGRY"]')
    assert customer.count() == angry.count() == len(customer_turns)
    assert all(t == "ANGRY" for t in angry.all_inner_texts())
    # no emotion on the agent channel (compliance default), shown as such
    agent = page.locator('.lane[data-speaker="agent"] .utt')
    assert agent.count() == len(agent_turns)
    no_emotion = page.locator('.lane[data-speaker="agent"] .utt[data-emotion=""]')
    assert no_emotion.count() == agent.count()
    assert page.locator("#call-transcript .tag-note:has-text('no SER')").count() == agent.count()

    # one escalation marker, drawn where the third angry utterance ends
    marker = page.locator(".marker.action-escalate")
    assert marker.count() == 1
    assert marker.get_attribute("data-rule") == "angry-streak"
    third = angry.nth(2).bounding_box()
    mark = marker.bounding_box()
    assert third is not None and mark is not None
    assert abs(mark["x"] - (third["x"] + third["width"])) <= 3

    # why it fired: the condition from the policy and the three evidence utterances
    decision = page.locator('#call-decisions .decision[data-rule="angry-streak"]')
    decision.locator(".condition").wait_for()
    assert "consecutive: 3" in decision.locator(".condition").inner_text()
    evidence = decision.locator(".evidence-list li")
    assert evidence.count() == 3
    assert all("customer" in t and "ANGRY" in t for t in evidence.all_inner_texts())
    assert page.locator('.lane[data-speaker="customer"] .utt.evidence').count() == 3

    summary = page.locator(".kv-escalated dd").inner_text()
    assert summary == "yes (high)"
    score = page.locator(".kv-satisfaction-score dd").inner_text()
    assert score.startswith(f"{call['summary']['satisfaction']['score']:.2f}")


def _rec(speaker: str, start: float, end: float, tags: str, text: str) -> dict[str, Any]:
    channel = 0 if speaker == "customer" else 1
    return {"channel": channel, "speaker": speaker, "start": start, "end": end,
            "raw": f"{tags}{text}"}  # fmt: skip


ANGRY = "<|en|><|ANGRY|><|Speech|><|withitn|>"
AGENT = "<|en|><|EMO_UNKNOWN|><|Speech|><|withitn|>"  # no SER on agents
MUSIC = "<|nospeech|><|EMO_UNKNOWN|><|BGM|><|woitn|>"

# A call with hold music between the first and the second angry turn, as a transcript a
# client already has (the FSMN VAD of the test model does not keep music spans). The
# markup in one text must come out as text.
HOLD_CALL = [
    _rec("agent", 0.5, 3.0, AGENT, "Thank you for calling, how can I help?"),
    _rec("customer", 3.6, 7.2, ANGRY, "I was charged twice for the same order!"),
    _rec("agent", 7.8, 9.6, AGENT, "Let me check that, please hold."),
    _rec("agent", 10.0, 22.0, MUSIC, ""),
    _rec("customer", 22.4, 25.1, ANGRY, "I have been waiting for <b>ages</b>."),
    _rec("agent", 25.6, 27.0, AGENT, "I am sorry about the wait."),
    _rec("customer", 27.5, 30.2, ANGRY, "Get me a supervisor, now."),
    _rec("agent", 30.8, 33.0, AGENT, "I am transferring you to my supervisor."),
]


def test_hold_music_is_shaded_and_skipped(page, service) -> None:
    with service.client() as c:
        r = c.post("/v1/calls", json={"duration": 34.0, "utterances": HOLD_CALL})
    assert r.status_code == 202, r.text
    call = wait_done(service, r.json()["id"])
    assert call["status"] == "done", call

    enter_key(page, service, f"/#/calls/{call['id']}")
    page.wait_for_selector(".marker.action-escalate")
    music = HOLD_CALL[3]
    bgm = page.locator(".overlay .bgm")
    assert bgm.count() == 1
    lane = page.locator('.lane[data-speaker="agent"] .lane-body').bounding_box()
    box = bgm.bounding_box()
    assert lane is not None and box is not None
    px_per_s = lane["width"] / 34.0
    assert abs(box["x"] - (lane["x"] + music["start"] * px_per_s)) < 2
    assert abs(box["x"] + box["width"] - (lane["x"] + music["end"] * px_per_s)) < 2
    # shaded, not drawn as an utterance of the agent, and counted in the summary
    assert page.locator('.utt[data-event="BGM"]').count() == 0
    assert page.locator("#call-transcript tr.skipped").count() == 1
    skipped = page.locator(".kv-skipped-music dd").inner_text()
    assert skipped == f"{music['end'] - music['start']:.1f} s"
    # the streak went on across the music: three angry utterances are the evidence
    assert page.locator(".utt.evidence").count() == 3
    mark = page.locator(".marker.action-escalate").bounding_box()
    assert mark is not None
    assert abs(mark["x"] - (lane["x"] + HOLD_CALL[6]["end"] * px_per_s)) < 3
    # transcripts are user data: markup is shown as text, never parsed
    cell = page.locator("#call-transcript td.text", has_text="ages")
    assert cell.inner_text() == "I have been waiting for <b>ages</b>."
    assert page.locator("#call-transcript td.text b").count() == 0
    shoot(page, "call.png")


def test_calls_list_pages_and_filters_escalated(page, service, calm_call, angry_call) -> None:
    path, _ = angry_call
    with service.client() as c, path.open("rb") as fh:
        r = c.post("/v1/calls", files={"audio": (path.name, fh, "audio/wav")})
    angry_id = r.json()["id"]
    wait_done(service, angry_id)

    enter_key(page, service, "/?page_size=1#/calls")
    first = page.locator("#calls-body tr")
    first.first.wait_for()
    assert first.count() == 1
    assert first.first.get_attribute("data-call-id") == angry_id  # newest first
    assert page.locator("#page-prev").is_disabled()
    page.click("#page-next")
    page.wait_for_selector(f'#calls-body tr[data-call-id="{calm_call}"]')
    assert page.locator("#page-prev").is_enabled()
    page.click("#page-prev")
    page.wait_for_selector(f'#calls-body tr[data-call-id="{angry_id}"]')

    page.goto(service.url + "/#/calls")
    page.reload()
    page.wait_for_selector(f'#calls-body tr[data-call-id="{calm_call}"]')
    rows = page.locator("#calls-body tr")
    ids = [rows.nth(i).get_attribute("data-call-id") for i in range(rows.count())]
    assert angry_id in ids and calm_call in ids
    assert page.locator(f'tr[data-call-id="{angry_id}"] .action-escalate').inner_text() == (
        "ESCALATED · HIGH"
    )
    shoot(page, "calls.png")
    page.check("#filter-escalated")
    page.wait_for_selector(f'#calls-body tr[data-call-id="{calm_call}"]', state="detached")
    escalated = page.locator("#calls-body tr")
    assert escalated.count() >= 1
    assert all(
        escalated.nth(i).get_attribute("data-escalated") == "true" for i in range(escalated.count())
    )
    page.click(f'tr[data-call-id="{angry_id}"] a')
    page.wait_for_selector(".marker.action-escalate", timeout=ANALYSIS_TIMEOUT_MS)


def test_policy_editor_shows_file_line_errors_and_clears_them(page, service) -> None:
    enter_key(page, service, "/#/policies/default")
    page.wait_for_selector("#policy-validation[data-kind=ok]")
    text = page.input_value("#policy-text")
    assert "angry-streak" in text
    bad = text.replace("consecutive: 3", "consecutive: 0")
    assert bad != text
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "consecutive: 0" in x)) + 1
    page.fill("#policy-text", bad)
    problem = page.locator("#policy-validation .problems li").first
    problem.wait_for()
    message = problem.inner_text()
    assert re.search(rf"default\.yaml:{line}: .*consecutive", message), message
    assert page.locator("#policy-gutter .err").all_inner_texts() == [str(line)]
    problem.locator("button").click()  # jumps to the line
    page.evaluate("document.querySelector('#policy-text').scrollTop = 0")
    shoot(page, "policy.png")

    page.fill("#policy-text", text)
    page.wait_for_selector("#policy-validation[data-kind=ok]")
    assert page.locator("#policy-validation .problems").count() == 0
    assert page.locator("#policy-gutter .err").count() == 0
    with service.client() as c:  # a dry run saved nothing
        assert "consecutive: 3" in c.get("/v1/policies/default").text

    # saving: a bad text is refused with the same error, a good one is stored
    page.fill("#policy-text", bad)
    page.click("#policy-save")
    page.wait_for_selector("#policy-save-status[data-kind=error]")
    assert f"default.yaml:{line}:" in page.text_content("#policy-save-status")
    edited = text.replace("description: Escalate angry callers", "description: Escalate callers")
    page.fill("#policy-text", edited)
    page.wait_for_selector("#policy-validation[data-kind=ok]")
    page.click("#policy-save")
    page.wait_for_selector("#policy-save-status[data-kind=ok]")
    with service.client() as c:
        stored = c.get("/v1/policies/default").json()
    assert (stored["source"], stored["text"]) == ("stored", edited)

    # the shipped test cases, run against the draft in the editor
    shipped = (ROOT / "configs" / "policies" / "tests" / "default.test.yaml").read_text()
    cases = "\n".join(x for x in shipped.splitlines() if not x.startswith("policies:"))
    n_cases = len(re.findall(r"^  - name:", cases, flags=re.M))
    page.fill("#policy-tests-text", cases)
    page.click("#policy-run-tests")
    page.wait_for_selector("#policy-tests .tests-total")
    assert page.inner_text("#policy-tests .tests-total") == f"{n_cases} passed, 0 failed"
    assert page.locator("#policy-tests .test-cases li.pass").count() == n_cases

    # a draft that breaks a case: the failing case shows with its diff
    page.fill("#policy-text", text.replace("consecutive: 3", "consecutive: 2"))
    page.wait_for_selector("#policy-validation[data-kind=ok]")
    page.click("#policy-run-tests")
    page.wait_for_selector("#policy-tests .test-cases li.fail .diff")
    assert "0 failed" not in page.inner_text("#policy-tests .tests-total")


def test_live_view_streams_a_call_and_an_observer_follows_it(page, service, angry_call) -> None:
    path, timeline = angry_call
    observer = page.context.new_page()
    observer_errors: list[str] = []
    observer.on("pageerror", lambda exc: observer_errors.append(str(exc)))
    enter_key(page, service, "/#/live")
    observer.goto(service.url + "/#/live")  # same browser profile: the key is stored

    page.set_input_files("#live-file", str(path))
    page.select_option("#live-language", "en")
    page.select_option("#live-speed", "1")
    page.click("#live-start")

    # a supervisor's page lists the call while it streams and follows it
    link = observer.locator("#live-running a").first
    link.wait_for(timeout=20_000)
    call_id = link.inner_text()
    assert call_id.startswith("web_")
    link.click()
    observer.wait_for_selector("#call-status[data-kind=busy]")
    assert "running" in observer.text_content("#call-status")

    # the escalation arrives mid-call: the browser is still sending audio
    page.wait_for_selector("#live-timeline .marker.action-escalate", timeout=60_000)
    assert page.text_content("#live-status").startswith("Streaming")
    observer.wait_for_selector(".marker.action-escalate", timeout=10_000)
    assert "running" in observer.text_content("#call-status")

    page.wait_for_selector("#live-status[data-kind=ok]", timeout=60_000)
    customer_turns = [t for t in timeline if t.speaker == "customer"]
    angry = page.locator('#live-timeline .lane[data-speaker="customer"] .utt[data-emotion="ANGRY"]')
    assert angry.count() == len(customer_turns)
    assert page.locator("#live-decisions .evidence-list li").count() == 3
    assert page.locator("#live-log li.decision").count() == 1
    assert page.get_attribute("#live-call-link", "href") == f"#/calls/{call_id}"
    shoot(page, "live.png")

    observer.wait_for_selector("#call-status[data-kind=ok]", timeout=20_000)
    followed = observer.locator('.lane[data-speaker="customer"] .utt[data-emotion="ANGRY"]')
    assert followed.count() == len(customer_turns)
    assert not observer_errors, observer_errors
