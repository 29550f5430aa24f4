"""AudioHook's signed upgrade: the verifier, the client secrets it uses, the real route, and
Genesys's reference library as the peer that signs and verifies the other way round
(``tests.connectors.audiohook_reference``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import KeyStore
from callsense.connectors.cli import app as cli_app
from callsense.connectors.platforms.genesys.signature import (
    MAX_AGE_S,
    REQUIRED,
    NonceCache,
    Rejected,
    Verified,
    verify_signature,
)
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.connectors.storage import make_engine
from callsense.pipeline.config import CacheConfig
from tests.connectors.audiohook_reference import prepared_peer, run_peer
from tests.live.audiohook_signing import COMPONENTS, authority, signed_headers
from tests.service.server import running, wait_ready

API_KEY = "csk_0123456789ab_" + "k" * 43
SECRET = base64.b64encode(bytes(range(32))).decode()
URL = "wss://CallSense.example.com/v1/audiohook?tenant=a%20b"
PROBE = "00000000-0000-0000-0000-000000000000"


def _verify(
    headers: dict[str, str], url: str = URL, secret: str | None = SECRET, now: float | None = None
) -> Verified | Rejected:
    parts = urlsplit(url)
    return verify_signature(
        method="GET",
        target=parts.path + (f"?{parts.query}" if parts.query else ""),
        authority=authority(url),
        headers=[(name.lower(), value) for name, value in headers.items()],
        secret=secret,
        now=time.time() if now is None else now,
    )


def _reason(result: Verified | Rejected) -> str:
    assert isinstance(result, Rejected), result
    return result.reason


def _signed(**kw: Any) -> dict[str, str]:
    return signed_headers(URL, API_KEY, SECRET, str(uuid.uuid4()), **kw)


# --- the verifier --------------------------------------------------------------------------


def test_the_example_of_genesys_documentation_verifies() -> None:
    """The signed upgrade of the AudioHook protocol documentation ("Establishing connection")."""
    headers = {
        "Host": "audiohook.example.com",
        "Audiohook-Organization-Id": "d7934305-0972-4844-938e-9060eef73d05",
        "Audiohook-Correlation-Id": "e160e428-53e2-487c-977d-96989bf5c99d",
        "Audiohook-Session-Id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
        "X-API-KEY": "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh",
        "Signature": "sig1=:NZBwyBHRRyRoeLqy1IzOa9VYBuI8TgMFt2GRDkDuJh4=:",
        "Signature-Input": 'sig1=("@request-target" "@authority" "audiohook-organization-id" '
        '"audiohook-session-id" "audiohook-correlation-id" "x-api-key");'
        'keyid="SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh";nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";'
        'alg="hmac-sha256";created=1641013200;expires=3282026430',
    }
    url = "wss://audiohook.example.com/api/v1/voicebiometrics/ws"
    secret = "TXlTdXBlclNlY3JldEtleVRlbGxOby0xITJAMyM0JDU="
    ok = _verify(headers, url, secret, now=1641013202)
    assert ok == Verified("SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh", "VGhpc0lzQVVuaXF1ZU5vbmNl",
                          1641013200 + MAX_AGE_S + 5)  # fmt: skip
    # its expires is decades away, but a signature is made for one upgrade, not forever
    assert "older than" in _reason(_verify(headers, url, secret, now=1641013200 + 60))


def test_a_signed_upgrade_verifies() -> None:
    headers = _signed()
    result = _verify(headers)
    assert isinstance(result, Verified) and result.keyid == API_KEY
    # header names are case-insensitive, and a default port is not part of the authority
    lower = {k.lower(): v for k, v in headers.items()}
    assert isinstance(_verify(lower, URL.replace(".com/", ".com:443/")), Verified)


@pytest.mark.parametrize(
    "header", ["Audiohook-Session-Id", "Audiohook-Organization-Id", "Audiohook-Correlation-Id"]
)
def test_a_changed_header_is_refused(header: str) -> None:
    headers = _signed()
    headers[header] = str(uuid.uuid4())
    assert "does not match" in _reason(_verify(headers))


@pytest.mark.parametrize(
    "url",
    [
        "wss://callsense.example.com/v1/audiohook?tenant=other",
        "wss://callsense.example.com/v1/audiohook",
        "wss://elsewhere.example.com/v1/audiohook?tenant=a%20b",
        "wss://callsense.example.com:8443/v1/audiohook?tenant=a%20b",
    ],
)
def test_another_target_or_authority_is_refused(url: str) -> None:
    assert "does not match" in _reason(_verify(_signed(), url))


def test_another_secret_is_refused() -> None:
    other = base64.b64encode(b"\x01" * 32).decode()
    assert "does not match" in _reason(_verify(_signed(), secret=other))
    assert "no client secret" in _reason(_verify(_signed(), secret=None))


@pytest.mark.parametrize(
    ("created_ago", "lifetime", "reason"),
    [
        (60, 30, "expired"),
        (MAX_AGE_S + 10, 3600, "older than"),
        (-60, 30, "in the future"),
    ],
)
def test_stale_and_future_signatures_are_refused(
    created_ago: int, lifetime: int, reason: str
) -> None:
    now = int(time.time())
    headers = _signed(created=now - created_ago, lifetime=lifetime)
    assert reason in _reason(_verify(headers, now=now))


def test_small_clock_skew_is_tolerated() -> None:
    now = int(time.time())
    for created in (now + 3, now - MAX_AGE_S - 3):
        assert isinstance(_verify(_signed(created=created), now=now), Verified)
    # expired 3 s ago by Genesys's clock: may be our clock that is ahead
    assert isinstance(_verify(_signed(created=now - 8, lifetime=5), now=now), Verified)


@pytest.mark.parametrize("left_out", REQUIRED)
def test_every_component_must_be_covered(left_out: str) -> None:
    headers = _signed(components=[c for c in COMPONENTS if c != left_out])
    assert _reason(_verify(headers)) == f"the signature does not cover {left_out}"


def test_the_keyid_must_be_the_api_key() -> None:
    headers = _signed(keyid="csk_0123456789ab_" + "z" * 43)
    assert "keyid is not the X-API-KEY" in _reason(_verify(headers))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Signature": None, "Signature-Input": None}, "not signed"),
        ({"Signature": None}, "Signature header is missing"),
        ({"Signature-Input": 'sig1=("@authority" x'}, "malformed"),
        ({"Signature": "sig2=:AAAA:"}, "no byte sequence labelled 'sig1'"),
        ({"X-API-KEY": None}, "X-API-KEY header is missing"),
    ],
)
def test_broken_signature_headers_are_refused(change: dict[str, str | None], reason: str) -> None:
    headers = _signed()
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    assert reason in _reason(_verify(headers))


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (('alg="hmac-sha256"', 'alg="rsa-pss-sha512"'), "not supported"),
        ((";alg=", ';color="red";alg='), "unknown signature parameter 'color'"),
        ((";created=", ";created=-"), "created must be an integer"),
        (('"x-api-key")', '"x-api-key";sf)'), "component parameters"),
        (('"@authority"', '"@Authority"'), "not allowed"),
    ],
)
def test_odd_signature_parameters_are_refused(edit: tuple[str, str], reason: str) -> None:
    headers = _signed()
    headers["Signature-Input"] = headers["Signature-Input"].replace(*edit)
    assert reason in _reason(_verify(headers))
    assert "nonce" in _reason(_verify(_signed(nonce="short")))


def test_the_nonce_cache_catches_replays_and_stays_bounded() -> None:
    cache = NonceCache(limit=3)
    first = Verified("k", "n" * 24, valid_until=100.0)
    assert cache.add(first, now=90.0)
    assert not cache.add(first, now=95.0)  # a replay within the window
    assert cache.add(Verified("other-key", "n" * 24, 100.0), now=95.0)  # per key
    assert cache.add(first, now=101.0)  # past the window the signature is refused for its age
    for i in range(10):
        assert cache.add(Verified("k", f"{i:024d}", 200.0 + i), now=150.0)
    assert len(cache) == 3


# --- client secrets ----------------------------------------------------------------------


def test_client_secrets_are_made_replaced_and_revoked(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        store = KeyStore(engine)
        key = store.create("genesys")
        assert store.secret_for(key) is None
        assert [k.has_secret for k in store.list()] == [False]
        first = store.create_secret("genesys")
        assert len(base64.b64decode(first, validate=True)) == 32
        second = store.create_secret("genesys")
        assert second != first and store.secret_for(key) == second
        assert store.list()[0].has_secret
        assert store.secret_for(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert store.revoke("genesys")
        assert store.secret_for(key) is None and not store.list()[0].has_secret
        with pytest.raises(Exception, match="no active key"):
            store.create_secret("genesys")
    finally:
        engine.dispose()


def test_an_older_key_table_gains_the_secret_column(db_url: str) -> None:
    """A database made before client secrets: its keys keep working and can get one."""
    engine = make_engine(db_url)
    salt, key = "00" * 16, "csk_00000000abcd_" + "a" * 43
    digest = hashlib.sha256(bytes.fromhex(salt) + key.encode()).hexdigest()
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "CREATE TABLE callsense_api_keys (name VARCHAR(64) PRIMARY KEY, key_id "
                    "VARCHAR(12) NOT NULL UNIQUE, salt VARCHAR(32) NOT NULL, digest VARCHAR(64) "
                    "NOT NULL, created_at FLOAT NOT NULL, revoked_at FLOAT)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO callsense_api_keys VALUES ('old', '00000000abcd', :s, :d, 1, NULL)"
                ),
                {"s": salt, "d": digest},
            )
        store = KeyStore(engine)
        KeyStore(engine)  # the upgrade runs again, harmlessly
        assert store.verify(key) == "old" and store.secret_for(key) is None
        secret = store.create_secret("old")
        assert store.secret_for(key) == secret
    finally:
        engine.dispose()


def test_keys_secret_prints_the_secret_once_and_list_shows_who_has_one(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    runner = CliRunner()
    assert runner.invoke(cli_app, ["keys", "create", "genesys", "--db", db]).exit_code == 0
    assert runner.invoke(cli_app, ["keys", "create", "twilio", "--db", db]).exit_code == 0
    made = runner.invoke(cli_app, ["keys", "secret", "genesys", "--db", db])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert len(base64.b64decode(secret, validate=True)) == 32
    listed = runner.invoke(cli_app, ["keys", "list", "--db", db], env={"COLUMNS": "200"})
    assert secret not in listed.stdout
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if "│" in line}
    assert "yes" in rows["genesys"] and "yes" not in rows["twilio"]
    missing = runner.invoke(cli_app, ["keys", "secret", "nobody", "--db", db])
    assert missing.exit_code != 0 and "no active key" in missing.output


# --- the real route ------------------------------------------------------------------------


@dataclass
class _Service:
    ws_url: str
    runtime: Runtime
    key: str
    secret: str


@contextmanager
def _serving(tmp: Path, **settings: Any) -> Iterator[_Service]:
    """A real service on 127.0.0.1 (no models: an AudioHook probe needs none), one key with a
    client secret."""
    app = create_app(
        AppConfig(cache=CacheConfig(enabled=False)),
        db_url=f"sqlite:///{tmp}/callsense.db",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False, **settings),
    )
    runtime: Runtime = app.state.runtime
    key = runtime.keys.create("genesys")
    secret = runtime.keys.create_secret("genesys")
    with running(app) as url:
        wait_ready(url)
        yield _Service(url.replace("http://", "ws://") + "/v1/audiohook", runtime, key, secret)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Service]:
    with _serving(tmp_path_factory.mktemp("signed-audiohook")) as svc:
        yield svc


async def _upgrade(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """101 and the probe's answer when the server accepts, else its status and detail."""
    try:
        async with connect(url, additional_headers=headers, open_timeout=10) as ws:
            session_id = headers.get("Audiohook-Session-Id", PROBE)
            await ws.send(json.dumps(_probe_open(session_id)))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 10))
            return 101, answer["type"]
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"{}").get("detail", "")


def _probe_open(session_id: str) -> dict[str, Any]:
    """A connection probe as Genesys sends it (all-zero ids): answered, never stored."""
    return {
        "version": "2", "type": "open", "seq": 1, "serverseq": 0, "id": session_id,
        "position": "PT0S",
        "parameters": {
            "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
            "conversationId": PROBE, "participant": {"id": PROBE, "ani": ""},
            "media": [{"type": "audio", "format": "PCMU", "channels": ["external", "internal"],
                       "rate": 8000}],
        },
    }  # fmt: skip


def test_the_route_accepts_a_good_signature_once(service: _Service) -> None:
    url = service.ws_url + "?tenant=a"
    headers = signed_headers(url, service.key, service.secret, str(uuid.uuid4()))

    async def main() -> list[tuple[int, str]]:
        return [await _upgrade(url, headers), await _upgrade(url, headers)]

    accepted, replayed = asyncio.run(main())
    assert accepted == (101, "opened")
    assert replayed[0] == 401 and "used before" in replayed[1]


def test_the_route_refuses_bad_signatures_at_the_upgrade(service: _Service) -> None:
    url = service.ws_url
    session = str(uuid.uuid4())
    other_secret = base64.b64encode(b"\x02" * 32).decode()
    wrong = signed_headers(url, service.key, other_secret, session)
    unsigned = {"X-API-KEY": service.key, "Audiohook-Session-Id": session}
    elsewhere = signed_headers(url + "/other", service.key, service.secret, session)
    stale = signed_headers(url, service.key, service.secret, session, created=1_700_000_000)

    async def main() -> list[tuple[int, str]]:
        return [await _upgrade(url, h) for h in (wrong, unsigned, elsewhere, stale)]

    results = asyncio.run(main())
    assert [status for status, _ in results] == [401] * 4
    details = [detail for _, detail in results]
    assert "does not match" in details[0] and "not signed" in details[1]
    assert "does not match" in details[2] and "expired" in details[3]
    assert not any(service.secret in d or other_secret in d for d in details)


def test_the_route_refuses_a_key_without_a_secret(service: _Service) -> None:
    key = service.runtime.keys.create("no-secret")
    url = service.ws_url
    headers = signed_headers(url, key, SECRET, str(uuid.uuid4()))
    status, detail = asyncio.run(_upgrade(url, headers))
    assert status == 401 and "no client secret" in detail


def test_signatures_off_admits_by_the_api_key_alone(tmp_path: Path) -> None:
    with _serving(tmp_path, platform_signatures="off") as svc:
        status, answer = asyncio.run(_upgrade(svc.ws_url, {"X-API-KEY": svc.key}))
    assert (status, answer) == (101, "opened")


# --- Genesys's reference library as the peer ----------------------------------------------


@pytest.fixture(scope="session")
def peer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return prepared_peer(tmp_path_factory.mktemp("peer"))


def test_what_the_reference_client_signs_verifies_here(peer: tuple[Path, Path]) -> None:
    ids = {"organizationId": str(uuid.uuid4()), "correlationId": str(uuid.uuid4())}
    tasks = [
        {"op": "sign", "url": url, "apiKey": API_KEY, "secret": SECRET,
         "sessionId": str(uuid.uuid4()), **ids}
        for url in (URL, "ws://127.0.0.1:8000/v1/audiohook")
    ]  # fmt: skip
    for task, headers in zip(tasks, run_peer(peer, tasks), strict=True):
        assert isinstance(_verify(headers, task["url"]), Verified), headers
        tampered = {**headers, "Audiohook-Session-Id": str(uuid.uuid4())}
        assert "does not match" in _reason(_verify(tampered, task["url"]))


def test_what_our_signer_makes_verifies_with_the_reference_server(
    peer: tuple[Path, Path],
) -> None:
    good = _signed()
    tampered = {**_signed(), "Audiohook-Correlation-Id": str(uuid.uuid4())}
    other_url = _signed()
    parts = urlsplit(URL)
    target = f"{parts.path}?{parts.query}"
    tasks = [
        {"op": "verify", "requestTarget": target, "secret": SECRET,
         "headers": {**{k.lower(): v for k, v in h.items()}, "host": authority(URL)}}
        for h in (good, tampered)
    ] + [
        {"op": "verify", "requestTarget": "/v1/audiohook", "secret": SECRET,
         "headers": {**{k.lower(): v for k, v in other_url.items()}, "host": authority(URL)}},
    ]  # fmt: skip
    verdicts = [r["code"] for r in run_peer(peer, tasks)]
    assert verdicts == ["VERIFIED", "FAILED", "FAILED"]
