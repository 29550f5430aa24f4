"""Twilio's signed Media Streams upgrade: ``X-Twilio-Signature`` over the URL Twilio called,
keyed by the account's auth token stored as the API key's secret.

Signatures come from twilio-python's ``RequestValidator`` (``tests.live.twilio_signing``),
so the service's own implementation is checked against Twilio's library; the routes run on
a real service (uvicorn on 127.0.0.1, SQLite) without models: only the upgrade is tested.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from callsense.connectors.app import create_app
from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import KeyStore
from callsense.connectors.cli import app as cli_app
from callsense.connectors.platforms.twilio import (
    compute_signature,
    url_variants,
    verify_signature,
)
from callsense.connectors.runtime import Runtime
from callsense.connectors.service_settings import ServiceSettings
from callsense.connectors.storage import make_engine
from callsense.core.errors import InputError
from callsense.pipeline.config import CacheConfig
from tests.live.twilio_signing import AUTH_TOKEN, as_twilio_calls_it, signature, signed, twilio_key
from tests.service.server import running, wait_ready

OTHER_TOKEN = "0" * 32


@dataclass
class _Service:
    ws_base: str  # ws://127.0.0.1:PORT
    runtime: Runtime
    key: str  # its secret is AUTH_TOKEN
    bare: str  # a valid key without a secret

    def url(self, key: str | None = None) -> str:
        return f"{self.ws_base}/v1/twilio?api_key={key or self.key}"


def _app(tmp: Path, **settings: Any) -> Any:
    return create_app(
        AppConfig(cache=CacheConfig(enabled=False)),
        db_url=f"sqlite:///{tmp}/callsense.db",
        load_models=False,
        settings=ServiceSettings(data_dir=tmp / "data", scheduler=False, **settings),
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Service]:
    app = _app(tmp_path_factory.mktemp("twilio-signature"))
    runtime: Runtime = app.state.runtime
    key = twilio_key(runtime, "twilio")
    bare = runtime.keys.create("no-token")
    with running(app) as base:
        wait_ready(base)
        yield _Service(base.replace("http://", "ws://"), runtime, key, bare)


async def _handshake(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """101 when the server accepts the upgrade, else its HTTP status and body."""
    try:
        async with connect(url, additional_headers=headers or {}, open_timeout=10):
            return 101, ""
    except InvalidStatus as exc:
        return exc.response.status_code, exc.response.body.decode(errors="replace")


def handshake(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    return asyncio.run(_handshake(url, headers))


# --- the algorithm, against twilio-python ---------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "wss://gw.example.com/v1/twilio",
        "wss://gw.example.com:443/v1/twilio?api_key=csk_abc_def",
        "wss://gw.example.com:8443/v1/twilio?api_key=a%20b&x=1",
        "https://gw.example.com/hooks/voice?x=%C3%A9",
        "ws://[::1]:8080/v1/twilio",
    ],
)
def test_signatures_match_twilio_python(url: str) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    params = {"CallSid": "CA" + "1" * 32, "From": "+15550100", "Digits": "1234"}
    for p in ({}, params):
        assert compute_signature(AUTH_TOKEN, url, p) == validator.compute_signature(url, p)
    # whatever port form Twilio signed, both libraries accept it (and refuse a wrong token)
    for variant in url_variants(url):
        sig = validator.compute_signature(variant, {})
        assert verify_signature(AUTH_TOKEN, url, sig)
        assert not verify_signature(OTHER_TOKEN, url, sig)
    assert not verify_signature(AUTH_TOKEN, url + "x", validator.compute_signature(url, {}))


def test_url_variants_drop_or_add_the_default_port() -> None:
    assert url_variants("wss://h.example/p?q=1") == [
        "wss://h.example/p?q=1",
        "wss://h.example:443/p?q=1",
    ]
    assert url_variants("wss://h.example:8443/p") == ["wss://h.example:8443/p", "wss://h.example/p"]
    assert url_variants("ws://[::1]:80/p") == ["ws://[::1]:80/p", "ws://[::1]/p"]
    assert url_variants("wss://h.example:bad/p") == ["wss://h.example:bad/p"]


# --- the route ------------------------------------------------------------------------------


def test_a_signed_upgrade_is_accepted(service: _Service) -> None:
    url = service.url()
    assert handshake(url, signed(url)) == (101, "")
    # Twilio signed the URL without the port the Host header carries: accepted too
    no_port = as_twilio_calls_it(url).replace(f":{url.split(':')[2].split('/')[0]}", "", 1)
    assert ":" not in no_port.split("//", 1)[1].split("/", 1)[0]
    headers = {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(no_port, {})}
    assert handshake(url, headers) == (101, "")


def test_unsigned_or_badly_signed_upgrades_are_refused_with_401(
    service: _Service, caplog: pytest.LogCaptureFixture
) -> None:
    url = service.url()
    caplog.set_level(logging.DEBUG, logger="callsense")
    cases = {
        "missing": (url, {}),
        "empty": (url, {"X-Twilio-Signature": ""}),
        "wrong token": (url, signed(url, OTHER_TOKEN)),
        "tampered query": (url, signed(url + "&call=other")),
        "tampered path": (url, signed(url.replace("/v1/twilio", "/v1/stream"))),
        "another key's URL": (url, signed(service.url(service.bare))),
        "key without token": (service.url(service.bare), signed(service.url(service.bare))),
        "shared-key rule": (
            url,
            {**signed(url), "X-Twilio-Webhooks-Signature-Settings": "key=k,algorithm=HMAC_SHA256"},
        ),
    }
    reasons = {}
    for name, (target, headers) in cases.items():
        status, body = handshake(target, headers)
        assert status == 401, name
        assert service.key not in body and service.bare not in body and AUTH_TOKEN not in body
        reasons[name] = body
    assert "not signed" in reasons["missing"] and "not signed" in reasons["empty"]
    assert "does not match" in reasons["wrong token"]
    assert "does not match" in reasons["tampered query"]
    assert "no auth token" in reasons["key without token"]
    assert "not supported" in reasons["shared-key rule"]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("callsense")]
    assert any("signature refused" in line for line in ours)
    assert not [line for line in ours if AUTH_TOKEN in line or service.key in line]


def test_twilio_sends_no_key_in_the_url_and_the_signature_names_it(service: _Service) -> None:
    """Twilio drops a ``<Stream>`` URL's query: the upgrade is told by its signature."""
    url = f"{service.ws_base}/v1/twilio"
    assert handshake(url, signed(url)) == (101, "")
    # a token no active key holds: refused, as is no signature at all
    status, body = handshake(url, signed(url, OTHER_TOKEN))
    assert status == 401 and "does not match" in body
    assert handshake(url)[0] == 401
    # a revoked key's token no longer admits anything
    twilio_key(service.runtime, "old-account", token="1" * 32)
    assert handshake(url, signed(url, "1" * 32)) == (101, "")
    assert service.runtime.keys.revoke("old-account")
    assert handshake(url, signed(url, "1" * 32))[0] == 401


def test_a_tls_terminating_proxy_needs_nothing_and_forwarded_host_is_not_trusted(
    service: _Service,
) -> None:
    url = service.url()
    # the proxy says the client came over TLS: Twilio's URL was wss:// anyway
    assert handshake(url, {**signed(url), "X-Forwarded-Proto": "https"}) == (101, "")
    # a client naming another host in X-Forwarded-Host cannot make its URL the signed one
    public = url.replace("127.0.0.1", "calls.example.com")
    forged = {**signed(public), "X-Forwarded-Host": public.split("//")[1].split("/")[0]}
    assert handshake(url, forged)[0] == 401


def test_signatures_off_admits_the_key_alone(tmp_path: Path) -> None:
    app = _app(tmp_path, platform_signatures="off")
    key = app.state.runtime.keys.create("dev")
    with running(app) as base:
        wait_ready(base)
        url = base.replace("http://", "ws://") + f"/v1/twilio?api_key={key}"
        assert handshake(url) == (101, "")
        assert handshake(url.replace(key, "csk_000000000000_" + "x" * 43))[0] == 401


# --- storing the auth token -----------------------------------------------------------------


def test_keys_secret_value_from_env_stores_the_auth_token(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'keys.db'}"
    runner = CliRunner()
    made = runner.invoke(cli_app, ["keys", "create", "twilio", "--db", db])
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1].strip()
    env = {"TWILIO_AUTH_TOKEN": AUTH_TOKEN}
    argv = ["keys", "secret", "twilio", "--value-from-env", "TWILIO_AUTH_TOKEN", "--db", db]
    stored = runner.invoke(cli_app, argv, env=env)
    assert stored.exit_code == 0, stored.output
    assert AUTH_TOKEN not in stored.output
    engine = make_engine(db)
    try:
        store = KeyStore(engine)
        assert store.secret_for(key) == AUTH_TOKEN
        unset = runner.invoke(cli_app, argv, env={"TWILIO_AUTH_TOKEN": ""})
        assert unset.exit_code != 0 and "TWILIO_AUTH_TOKEN" in unset.output
        nobody = runner.invoke(cli_app, [*argv[:2], "nobody", *argv[3:]], env=env)
        assert nobody.exit_code != 0 and "no active key" in nobody.output
        assert store.secret_for(key) == AUTH_TOKEN  # neither failure touched it
        with pytest.raises(InputError, match="printable"):
            store.set_secret("twilio", "has a space")
    finally:
        engine.dispose()


def test_signature_helpers_sign_as_twilio_calls(service: _Service) -> None:
    """The test helper signs the wss:// URL (what Twilio calls), not the ws:// one."""
    url = service.url()
    assert signature(url) == RequestValidator(AUTH_TOKEN).compute_signature(
        "wss://" + url.removeprefix("ws://"), {}
    )
