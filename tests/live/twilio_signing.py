"""Sign a Twilio Media Streams upgrade the way Twilio does, for tests that open ``/v1/twilio``.

The signature comes from twilio-python's own ``RequestValidator``, not from callsense's
verifier, so the two check each other. Usage::

    key = twilio_key(runtime, "twilio-tests")  # an API key whose secret is AUTH_TOKEN
    url = service.ws("/v1/twilio", key=key)
    async with connect(url, additional_headers=signed(url)) as ws: ...
"""

from __future__ import annotations

from typing import Any

from twilio.request_validator import RequestValidator

__all__ = ["AUTH_TOKEN", "as_twilio_calls_it", "signature", "signed", "twilio_key"]

AUTH_TOKEN = "5f0e6ea1c9b4d2a87e31b0c4d9a6f2e8"  # made up, shaped like an account's auth token


def as_twilio_calls_it(url: str) -> str:
    """``url`` with Twilio's scheme: Media Streams connects over ``wss`` only (the tests
    connect with ``ws`` to a server without TLS, as a TLS-terminating proxy would)."""
    return "wss://" + url.split("://", 1)[1]


def signature(url: str, token: str = AUTH_TOKEN) -> str:
    """``X-Twilio-Signature`` of an upgrade to ``url`` (no POST parameters)."""
    return str(RequestValidator(token).compute_signature(as_twilio_calls_it(url), {}))


def signed(url: str, token: str = AUTH_TOKEN) -> dict[str, str]:
    """The header Twilio adds to its upgrade to ``url``."""
    return {"X-Twilio-Signature": signature(url, token)}


def twilio_key(runtime: Any, name: str, token: str = AUTH_TOKEN) -> str:
    """A new API key whose secret is the account's auth token ``token``."""
    key = str(runtime.keys.create(name))
    runtime.keys.set_secret(name, token)
    return key
