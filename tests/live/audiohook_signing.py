"""Sign an AudioHook upgrade the way Genesys Cloud does, for tests that open ``/v1/audiohook``.

Written from the protocol (RFC 9421 with HMAC-SHA256, the components Genesys's client covers),
not from callsense's verifier, so that the two check each other; the peer test also checks it
against Genesys's reference library. Usage::

    headers = signed_headers(url, service.key, secret, session_id)
    async with connect(url, additional_headers=headers) as ws: ...

where ``secret = runtime.keys.create_secret(name)`` for the key's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["COMPONENTS", "ORGANIZATION_ID", "authority", "signed_headers"]

ORGANIZATION_ID = "d7934305-0972-4844-938e-9060eef73d05"
# what Genesys's client covers, in its order
COMPONENTS = (
    "@request-target",
    "@authority",
    "audiohook-organization-id",
    "audiohook-session-id",
    "audiohook-correlation-id",
    "x-api-key",
)
_DEFAULT_PORTS = {"ws": 80, "http": 80, "wss": 443, "https": 443}


def authority(url: str) -> str:
    """``host[:port]`` as a WebSocket client sends it in ``Host``: lowercase, no default port."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return host if port is None or port == _DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def signed_headers(
    url: str,
    api_key: str,
    secret: str,
    session_id: str,
    organization_id: str = ORGANIZATION_ID,
    correlation_id: str | None = None,
    *,
    created: int | None = None,
    lifetime: int = 30,
    nonce: str | None = None,
    keyid: str | None = None,
    components: Sequence[str] = COMPONENTS,
) -> dict[str, str]:
    """The headers Genesys sends on the upgrade to ``url`` (sign the URL you connect to, query
    included): the AudioHook ids, ``X-API-KEY``, ``Signature-Input`` and ``Signature`` made
    with the base64 client ``secret``. The keywords bend it for tests of refusals."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Audiohook-Organization-Id": organization_id,
        "Audiohook-Session-Id": session_id,
        "Audiohook-Correlation-Id": correlation_id or str(uuid.uuid4()),
        "X-API-KEY": api_key,
    }
    values = {name.lower(): value for name, value in headers.items()}
    values |= {"@request-target": target, "@authority": authority(url)}
    created = int(time.time()) if created is None else created
    nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
    listed = " ".join(f'"{name}"' for name in components)
    params = (
        f'({listed});keyid="{keyid or api_key}";nonce="{nonce}";alg="hmac-sha256"'
        f";created={created};expires={created + lifetime}"
    )
    base = "".join(f'"{name}": {values[name]}\n' for name in components)
    base += f'"@signature-params": {params}'
    mac = hmac.new(base64.b64decode(secret), base.encode(), hashlib.sha256).digest()
    headers["Signature-Input"] = f"sig1={params}"
    headers["Signature"] = f"sig1=:{base64.b64encode(mac).decode()}:"
    return headers
