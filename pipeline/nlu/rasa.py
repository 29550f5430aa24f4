"""An external NLU over HTTP, speaking Rasa's ``POST /model/parse`` shape.

Request ``{"text": ..., "message_id": ...}``; response ``{"intent": {"name": ...,
"confidence": ...}, ...}``. Timeouts, connection failures, 5xx and 429 are retried with
exponential backoff; anything else that is wrong is reported at once. Every failure is a
``HookFailure``: the chain turns it into an error record and the call goes on.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from callsense.pipeline.nlu.base import HookCapabilities, HookFailure, Intent, IntentHook

__all__ = ["RasaHook"]

log = logging.getLogger(__name__)


class RasaHook(IntentHook):
    capabilities = HookCapabilities(network=True)

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout_s: float = 2.0,
        retries: int = 2,
        backoff_s: float = 0.2,
        token: str | None = None,
        intent_map: Mapping[str, str] | None = None,
        ignore: Iterable[str] = ("nlu_fallback",),
        drop_unmapped: bool = False,
        languages: Iterable[str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(name)
        self.retries = retries
        self.backoff_s = backoff_s
        self.intent_map = dict(intent_map or {})
        self.ignore = frozenset(ignore)
        self.drop_unmapped = drop_unmapped
        self._sleep = sleep
        self._caps = HookCapabilities(
            languages=frozenset(languages) if languages is not None else None, network=True
        )
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            timeout=httpx.Timeout(timeout_s),
            params={"token": token} if token else None,
            transport=transport,
            trust_env=False,
        )

    @classmethod
    def token_from_env(cls, var: str | None) -> str | None:
        return os.environ.get(var) if var else None

    @property
    def caps(self) -> HookCapabilities:
        return self._caps

    def classify(self, text: str, lang: str | None) -> Intent | None:
        body = {"text": text, "message_id": uuid.uuid4().hex}
        failure = HookFailure("error", "no attempt made")
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                resp = self._client.post("/model/parse", json=body)
            except httpx.TimeoutException as exc:
                failure = HookFailure("timeout", f"{type(exc).__name__} after retries")
                continue
            except httpx.TransportError as exc:
                failure = HookFailure("connect", f"{type(exc).__name__}: cannot reach the server")
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                failure = HookFailure("http_status", f"HTTP {resp.status_code}")
                continue
            if resp.status_code >= 400:
                raise HookFailure("http_status", f"HTTP {resp.status_code} (not retried)")
            return self._parse(resp)
        if self.retries:
            failure = HookFailure(failure.kind, f"{failure.message} ({self.retries + 1} attempts)")
        raise failure

    def _parse(self, resp: httpx.Response) -> Intent | None:
        try:
            data: Any = resp.json()
        except ValueError:
            raise HookFailure("bad_response", "response is not JSON") from None
        if not isinstance(data, dict):
            raise HookFailure("bad_response", "response is not a JSON object")
        intent = data.get("intent")
        if intent is None:
            return None
        if not isinstance(intent, dict):
            raise HookFailure("bad_response", "'intent' is not an object")
        name, conf = intent.get("name"), intent.get("confidence")
        if name is None:
            return None
        if not isinstance(name, str) or not name:
            raise HookFailure("bad_response", "'intent.name' is not a string")
        if (
            isinstance(conf, bool)
            or not isinstance(conf, (int, float))
            or not math.isfinite(conf)
            or not 0.0 <= conf <= 1.0
        ):
            raise HookFailure("bad_response", "'intent.confidence' is not a number in [0, 1]")
        if name in self.ignore:
            return None
        mapped = self.intent_map.get(name)
        if mapped is None and self.drop_unmapped:
            return None
        return Intent(mapped or name, float(conf), self.name)

    def close(self) -> None:
        self._client.close()
