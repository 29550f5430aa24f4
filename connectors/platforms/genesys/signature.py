"""Genesys AudioHook's signed upgrade: HTTP Message Signatures (RFC 9421), HMAC-SHA256.

Genesys Cloud signs every AudioHook connection. ``Signature-Input`` lists the covered
components and the signature's parameters, ``Signature`` holds the HMAC-SHA256, keyed by the
integration's client secret (base64-decoded; here ``callsense keys secret NAME``), of the
signature base: one ``"name": value`` line per covered component, then the parameters::

    "@request-target": /v1/audiohook
    "@authority": callsense.example.com
    "audiohook-organization-id": d7934305-...
    ...
    "x-api-key": csk_...
    "@signature-params": ("@request-target" ... "x-api-key");keyid="csk_...";nonce="...";...

The rules are those of Genesys's reference server: the signature covers ``@request-target``,
``@authority`` and the headers in ``REQUIRED``; ``keyid`` is the ``X-API-KEY`` the request
sends; the ``nonce`` has at least 22 characters; ``alg``, if given, is ``hmac-sha256``; it is
not ``created`` in the future, not older than ``MAX_AGE_S`` and not past ``expires``, each with
``CLOCK_SKEW_S`` of slack. A nonce is accepted once per process until its signature would be
refused for its age anyway (``NonceCache``). ``@authority`` is the ``Host`` header and
``@request-target`` the path and query as sent: a proxy in front must keep both.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import heapq
import hmac
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket

from callsense.connectors.live.connection import Refusal
from callsense.connectors.platforms.genesys.structured_fields import (
    FieldError,
    InnerList,
    Item,
    parse_dictionary,
    serialize_inner_list,
)

__all__ = [
    "CLOCK_SKEW_S",
    "MAX_AGE_S",
    "REQUIRED",
    "FieldError",
    "NonceCache",
    "Rejected",
    "Verified",
    "check_audiohook_upgrade",
    "request_target",
    "verify_signature",
]

log = logging.getLogger(__name__)

CLOCK_SKEW_S = 5  # how far Genesys's clock and ours may differ
MAX_AGE_S = 10  # a signature is made right before the upgrade (the reference server's limit)
MIN_NONCE, MAX_NONCE = 22, 256  # 22: the reference server's minimum (about 128 bits)
REQUIRED = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
_PARAM_TYPES: dict[str, type] = {
    "keyid": str, "nonce": str, "alg": str, "tag": str, "created": int, "expires": int,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Verified:
    """A valid signature; its nonce must not come again before ``valid_until``."""

    keyid: str
    nonce: str
    valid_until: float


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a signature is refused (safe to tell the client: never the secret)."""

    reason: str


def _canonical(value: str) -> str:
    """A header value as signed: outer whitespace trimmed, obsolete line folds joined."""
    return re.sub(r"[ \t]*\r\n[ \t]+", " ", value.strip(" \t"))


def _name(text: str) -> str:
    """A client-chosen name, short and quoted, for a reason."""
    return repr(text[:64])


def verify_signature(
    *,
    method: str,
    target: str,
    authority: str,
    headers: Iterable[tuple[str, str]],
    secret: str | None,
    now: float,
) -> Verified | Rejected:
    """Check an AudioHook upgrade's signature: ``target`` is the path and query as sent,
    ``authority`` the ``Host``, ``secret`` the base64 client secret of its ``X-API-KEY`` (None:
    the key has none). Pure: replays are the caller's to catch (``Verified.nonce``)."""
    fields: dict[str, list[str]] = {}
    for name, value in headers:
        fields.setdefault(name.lower(), []).append(_canonical(value))
    header = _Headers(fields)
    found = _signature(header)
    if isinstance(found, Rejected):
        return found
    covered, signature = found
    names = _components(covered)
    if isinstance(names, Rejected):
        return names
    params: dict[str, Any] = covered.params
    refused = _check_params(params, header("x-api-key"), now)
    if refused is not None:
        return refused

    path, _, query = target.partition("?")
    derived = {
        "@method": method,
        "@request-target": target,
        "@path": path or "/",
        "@query": "?" + query,
        "@authority": authority.strip().lower(),
    }
    lines = []
    for name in names:
        value = derived.get(name) if name.startswith("@") else header(name)
        if value is None:
            return Rejected(f"component {_name(name)} is not in the request")
        lines.append(f'"{name}": {value}')
    lines.append(f'"@signature-params": {serialize_inner_list(covered)}')
    try:
        base = "\n".join(lines).encode("ascii")
    except UnicodeEncodeError:
        return Rejected("a covered component is not ASCII")

    if secret is None:
        return Rejected("the API key has no client secret (callsense keys secret NAME)")
    try:
        key = base64.b64decode(secret, validate=True)
    except binascii.Error:
        return Rejected("the API key's client secret is not base64")
    if not hmac.compare_digest(hmac.new(key, base, hashlib.sha256).digest(), signature):
        return Rejected(
            "the signature does not match (another client secret, or a covered component "
            "changed on the way)"
        )
    created, expires = params["created"], params.get("expires")
    until = created + MAX_AGE_S if expires is None else min(created + MAX_AGE_S, expires)
    return Verified(params["keyid"], params["nonce"], until + CLOCK_SKEW_S)


@dataclass(frozen=True, slots=True)
class _Headers:
    """A request's header fields by lowercase name: one value, lines joined as signed."""

    fields: dict[str, list[str]]

    def __call__(self, name: str) -> str | None:
        values = self.fields.get(name)
        return None if values is None else ", ".join(values)


def _signature(header: _Headers) -> tuple[InnerList, bytes] | Rejected:
    """The first signature of ``Signature-Input`` (components and parameters) and its MAC."""
    sig_input, sig = header("signature-input"), header("signature")
    if sig_input is None and sig is None:
        return Rejected("the request is not signed (no Signature-Input and Signature headers)")
    if sig_input is None or sig is None:
        return Rejected(
            f"the {'Signature' if sig is None else 'Signature-Input'} header is missing"
        )
    try:
        inputs, signatures = parse_dictionary(sig_input), parse_dictionary(sig)
    except FieldError as exc:
        return Rejected(f"Signature or Signature-Input is malformed: {exc}")
    if not inputs:
        return Rejected("Signature-Input names no signature")
    label = next(iter(inputs))
    covered, signature = inputs[label], signatures.get(label)
    if not isinstance(covered, InnerList):
        return Rejected(f"Signature-Input {_name(label)} is not a list of components")
    if not isinstance(signature, Item) or not isinstance(signature.value, bytes):
        return Rejected(f"Signature has no byte sequence labelled {_name(label)}")
    return covered, signature.value


def _components(covered: InnerList) -> list[str] | Rejected:
    """The covered components' names, each once, including every one of ``REQUIRED``."""
    names: list[str] = []
    for item in covered.items:
        if type(item.value) is not str:
            return Rejected("covered components must be quoted strings")
        name = item.value
        if item.params:
            return Rejected(f"component parameters are not supported ({_name(name)})")
        if name != name.lower() or name == "@signature-params" or name in names:
            return Rejected(f"component {_name(name)} is not allowed here or covered twice")
        names.append(name)
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        return Rejected(f"the signature does not cover {', '.join(missing)}")
    return names


def _check_params(params: dict[str, Any], api_key: str | None, now: float) -> Rejected | None:
    """The signature's parameters: known and well typed, its key, nonce, algorithm, times."""
    for key, value in params.items():
        kind = _PARAM_TYPES.get(key)
        if kind is None:
            return Rejected(f"unknown signature parameter {_name(key)}")
        if type(value) is not kind or (isinstance(value, int) and value < 0):
            what = "an integer >= 0" if kind is int else "a quoted string"
            return Rejected(f"signature parameter {key} must be {what}")
    if "keyid" not in params:
        return Rejected("the signature has no keyid")
    if api_key is None:
        return Rejected("the X-API-KEY header is missing")
    if api_key != params["keyid"]:
        return Rejected("the signature's keyid is not the X-API-KEY header")
    if not MIN_NONCE <= len(params.get("nonce", "")) <= MAX_NONCE:
        return Rejected(f"the signature needs a nonce of {MIN_NONCE}-{MAX_NONCE} characters")
    if params.get("alg", "hmac-sha256") != "hmac-sha256":
        return Rejected(f"signature algorithm {_name(params['alg'])} is not supported")
    created, expires = params.get("created"), params.get("expires")
    if created is None:
        return Rejected("the signature has no created time")
    if created > now + CLOCK_SKEW_S:
        return Rejected("the signature was created in the future (check the clocks)")
    if expires is not None and now > expires + CLOCK_SKEW_S:
        return Rejected("the signature has expired")
    if now > created + MAX_AGE_S + CLOCK_SKEW_S:
        return Rejected(f"the signature is older than {MAX_AGE_S} s")
    return None


class NonceCache:
    """The nonces of accepted signatures, each until its signature is too old anyway.

    Bounded: past ``limit`` entries the one that expires first goes. Only valid signatures
    enter, so filling it takes the secret and ``limit`` connections within the validity
    window (about 15 s); per process, so gateways behind one balancer keep their own.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._until: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._until)

    def add(self, verified: Verified, now: float) -> bool:
        """Record the nonce; False when it was seen (a replay)."""
        while self._heap and (self._heap[0][0] < now or len(self._until) >= self.limit):
            until, key = heapq.heappop(self._heap)
            if self._until.get(key) == until:
                del self._until[key]
        key = (verified.keyid, verified.nonce)
        if key in self._until:
            return False
        self._until[key] = verified.valid_until
        heapq.heappush(self._heap, (verified.valid_until, key))
        return True


def request_target(scope: dict[str, Any]) -> str:
    """The path and query of the upgrade as the client sent them (not percent-decoded)."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope.get("path", "/")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _nonces(app: Any) -> NonceCache:
    cache = getattr(app.state, "audiohook_nonces", None)
    if cache is None:
        cache = app.state.audiohook_nonces = NonceCache()
    return cache


async def check_audiohook_upgrade(websocket: WebSocket, key_name: str | None) -> Refusal | None:
    """``serve``'s platform check for AudioHook: 401 unless the upgrade carries a valid,
    fresh, unreplayed signature made with its API key's client secret. No check when the
    service has no key store (like the API key check) or ``platform_signatures`` is off."""
    runtime = getattr(websocket.app.state, "runtime", None)
    keys = getattr(runtime, "keys", None)
    if keys is None or runtime.settings.platform_signatures == "off":
        return None
    api_key = _canonical(websocket.headers.get("x-api-key", ""))
    secret = await asyncio.to_thread(keys.secret_for, api_key) if api_key else None
    now = time.time()
    result = verify_signature(
        method="GET",
        target=request_target(websocket.scope),
        authority=websocket.headers.get("host", ""),
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in websocket.headers.raw],
        secret=secret,
        now=now,
    )
    if isinstance(result, Verified) and not _nonces(websocket.app).add(result, now):
        result = Rejected("the signature's nonce was used before (a replayed request)")
    if isinstance(result, Rejected):
        log.info("audiohook: signature refused: %s", result.reason)
        return Refusal(401, f"AudioHook signature: {result.reason}")
    return None
