"""The Rasa hook against a real HTTP server on 127.0.0.1 that answers like Rasa, and
fails like a real one: 500s, hangs, bad JSON, refused connections."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from callsense.pipeline.nlu import HookError, IntentClassifier
from callsense.pipeline.nlu.base import HookFailure
from callsense.pipeline.nlu.config import BreakerConfig, ChainConfig, IntentSpec
from callsense.pipeline.nlu.keywords import KeywordHook
from callsense.pipeline.nlu.rasa import RasaHook


@dataclass
class FakeRasa:
    """Server state: a queue of behaviours for the next requests, then ``default``."""

    script: list[str] = field(default_factory=list)
    default: str = "ok"
    requests: list[dict[str, Any]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    url: str = ""

    def next_mode(self) -> str:
        return self.script.pop(0) if self.script else self.default


def _handler(state: FakeRasa) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path, _, query = self.path.partition("?")
            if path != "/model/parse":
                self._send(404, b'{"error": "not found"}')
                return
            request = json.loads(body)
            state.requests.append(request)
            state.queries.append(query)
            mode = state.next_mode()
            if mode == "ok":
                name = "request_human" if "human" in request["text"] else "greet"
                payload = {
                    "text": request["text"],
                    "intent": {"name": name, "confidence": 0.87},
                    "entities": [],
                    "intent_ranking": [{"name": name, "confidence": 0.87}],
                }
                self._send(200, json.dumps(payload).encode())
            elif mode == "fallback":
                self._send(200, b'{"intent": {"name": "nlu_fallback", "confidence": 0.3}}')
            elif mode == "null_intent":
                self._send(200, b'{"text": "x", "intent": null, "entities": []}')
            elif mode == "500":
                self._send(500, b"internal error")
            elif mode == "400":
                self._send(400, b'{"error": "bad request"}')
            elif mode == "badjson":
                self._send(200, b"{not json")
            elif mode == "list":
                self._send(200, b"[1, 2]")
            elif mode == "badconf":
                self._send(200, b'{"intent": {"name": "greet", "confidence": 7}}')
            elif mode == "hang":
                time.sleep(1.0)
                self._send(200, b'{"intent": null}')

        def _send(self, status: int, body: bytes) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (timeout test)
                pass

    return Handler


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    state = FakeRasa()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


def _hook(url: str, **kw: Any) -> RasaHook:
    kw.setdefault("timeout_s", 0.3)
    kw.setdefault("retries", 2)
    kw.setdefault("backoff_s", 0.01)
    return RasaHook("rasa", url, **kw)


def test_parses_rasa_response_and_maps_names(rasa: FakeRasa) -> None:
    hook = _hook(rasa.url, intent_map={"request_human": "speak_to_human"}, token="s3cret")
    got = hook.classify("can I talk to a human", "en")
    assert got is not None and (got.name, got.confidence, got.hook) == (
        "speak_to_human",
        0.87,
        "rasa",
    )
    got = hook.classify("hi there", "en")
    assert got is not None and got.name == "greet"  # unmapped names pass through by default
    assert rasa.requests[0]["text"] == "can I talk to a human"
    ids = [r["message_id"] for r in rasa.requests]
    assert len(set(ids)) == 2 and all(isinstance(i, str) and i for i in ids)
    assert rasa.queries[0] == "token=s3cret"
    hook.close()


def test_fallback_null_and_unmapped_are_no_intent(rasa: FakeRasa) -> None:
    hook = _hook(rasa.url, drop_unmapped=True)
    rasa.script = ["fallback", "null_intent", "ok"]
    assert hook.classify("hmm", None) is None
    assert hook.classify("hmm", None) is None
    assert hook.classify("hello", None) is None  # "greet" is not mapped and dropped
    hook.close()


def test_retries_5xx_then_succeeds(rasa: FakeRasa) -> None:
    sleeps: list[float] = []
    hook = _hook(rasa.url, retries=2, backoff_s=0.05, sleep=sleeps.append)
    rasa.script = ["500", "500", "ok"]
    got = hook.classify("hello", None)
    assert got is not None and got.name == "greet"
    assert len(rasa.requests) == 3
    assert sleeps == [0.05, 0.1]  # exponential backoff
    hook.close()


@pytest.mark.parametrize(
    ("mode", "kind", "attempts"),
    [
        ("500", "http_status", 3),
        ("400", "http_status", 1),  # a client error is not retried
        ("badjson", "bad_response", 1),
        ("list", "bad_response", 1),
        ("badconf", "bad_response", 1),
    ],
)
def test_failures_have_a_kind(rasa: FakeRasa, mode: str, kind: str, attempts: int) -> None:
    rasa.default = mode
    hook = _hook(rasa.url)
    with pytest.raises(HookFailure) as info:
        hook.classify("hello", None)
    assert info.value.kind == kind
    assert len(rasa.requests) == attempts
    assert "hello" not in info.value.message  # no transcript text in error records
    hook.close()


def test_hang_times_out_in_bounded_time(rasa: FakeRasa) -> None:
    rasa.default = "hang"
    hook = _hook(rasa.url, timeout_s=0.2, retries=1)
    t0 = time.monotonic()
    with pytest.raises(HookFailure) as info:
        hook.classify("hello", None)
    elapsed = time.monotonic() - t0
    assert info.value.kind == "timeout"
    assert 0.35 < elapsed < 1.5
    hook.close()


def _refused_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    return f"http://127.0.0.1:{port}"


def test_connection_refused() -> None:
    hook = _hook(_refused_url(), retries=1)
    with pytest.raises(HookFailure) as info:
        hook.classify("hello", None)
    assert info.value.kind == "connect"
    hook.close()


def _chain(rasa_url: str, strategy: str = "first", **kw: Any) -> IntentClassifier:
    keywords = KeywordHook("keywords", {"refund": IntentSpec(keywords={"en": ["refund"]})})
    return IntentClassifier(
        [keywords, _hook(rasa_url, retries=0)],
        ChainConfig(strategy=strategy),  # type: ignore[arg-type]
        breakers=[None, BreakerConfig(failures=2, cooldown_s=10)],
        **kw,
    )


def test_chain_first_does_not_ask_rasa_when_keywords_answer(rasa: FakeRasa) -> None:
    nlu = _chain(rasa.url)
    got = nlu.classify_text("I want a refund", "en", call_id="c1")
    assert got.intent is not None and got.intent.hook == "keywords"
    assert rasa.requests == []
    got = nlu.classify_text("can I talk to a human", "en", call_id="c1")
    assert got.intent is not None and (got.intent.name, got.intent.hook) == (
        "request_human",
        "rasa",
    )
    nlu.close()


def test_chain_highest_asks_everyone(rasa: FakeRasa) -> None:
    nlu = _chain(rasa.url, strategy="highest")
    got = nlu.classify_text("refund for the human", "en")
    # keywords say 0.9, rasa 0.87: the keyword answer is more confident
    assert got.intent is not None and got.intent.hook == "keywords"
    assert len(rasa.requests) == 1
    nlu.close()


def test_failing_hook_is_an_error_record_and_breaker_opens(rasa: FakeRasa) -> None:
    now = [100.0]
    rasa.default = "500"
    nlu = _chain(rasa.url, clock=lambda: now[0])
    results = [nlu.classify_text("what about my order", "en", call_id="c9") for _ in range(4)]
    assert all(r.intent is None for r in results)
    assert [e.kind for r in results for e in r.errors] == [
        "http_status",
        "http_status",
        "circuit_open",
    ]
    assert results[0].errors[0] == HookError("rasa", "c9", "http_status", "HTTP 500")
    assert len(rasa.requests) == 2  # skipped while open
    # keywords still work while rasa's breaker is open
    assert nlu.classify_text("refund", "en").intent is not None
    now[0] += 11  # cooldown over: asked again, and it recovered
    rasa.default = "ok"
    got = nlu.classify_text("talk to a human", "en", call_id="c9")
    assert got.intent is not None and got.intent.hook == "rasa" and got.errors == ()
    nlu.close()


def test_a_crashing_hook_never_raises_into_the_call() -> None:
    from callsense.pipeline.nlu.base import Intent, IntentHook

    class Broken(IntentHook):
        def classify(self, text: str, lang: str | None) -> Intent | None:
            raise ZeroDivisionError("boom")

    class Liar(IntentHook):
        def classify(self, text: str, lang: str | None) -> Intent | None:
            return Intent("x", 3.0, self.name)

    nlu = IntentClassifier([Broken("broken"), Liar("liar")])
    got = nlu.classify_text("anything", "en", call_id="c")
    assert got.intent is None
    assert [(e.hook, e.kind, e.message) for e in got.errors] == [
        ("broken", "error", "ZeroDivisionError"),
        ("liar", "bad_response", "hook returned an invalid intent"),
    ]


def test_enabled_rasa_from_yaml_is_used(rasa: FakeRasa, tmp_path: Any) -> None:
    cfg = tmp_path / "intents.yaml"
    cfg.write_text(
        "intents:\n  speak_to_human:\n    keywords: {en: [operator]}\n"
        "hooks:\n  - {name: keywords, type: keywords}\n"
        f"  - {{name: rasa, type: rasa, url: '{rasa.url}', timeout_s: 0.5, retries: 0,\n"
        "      intent_map: {request_human: speak_to_human}}\n",
        encoding="utf-8",
    )
    nlu = IntentClassifier.load(cfg)
    got = nlu.classify_text("a human please", "en")
    assert got.intent is not None and (got.intent.name, got.intent.hook) == (
        "speak_to_human",
        "rasa",
    )
    nlu.close()
