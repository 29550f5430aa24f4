"""Key roles: a viewer key reads and watches, and is refused (403 problem+json) on every route
that may change something, found by walking the app's routes, so a new route is covered
without anyone remembering to add it here."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from typer.testing import CliRunner
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from callsense.connectors.appconfig import AppConfig
from callsense.connectors.auth import SAFE_METHODS, KeyStore
from callsense.connectors.cli import app as cli
from callsense.connectors.storage import make_engine
from callsense.pipeline.config import CacheConfig
from tests.service.conftest import Service, serve

# the routes that are not GET but only check a policy draft: viewers may use them
CHANGE_NOTHING = {
    ("POST", "/v1/policies/diff"),
    ("POST", "/v1/policies/{name}/validate"),
    ("POST", "/v1/policies/{name}/test"),
}
# among the routes that may change something: the ones the issue names, so the walk below
# cannot pass by finding none
KNOWN_CHANGES = {
    ("PUT", "/v1/policies/{name}"),
    ("DELETE", "/v1/policies/{name}"),
    ("POST", "/v1/calls"),
    ("DELETE", "/v1/calls/{call_id}"),
    ("POST", "/v1/calls/{call_id}/resolve"),
    ("POST", "/v1/webhooks/failed/{webhook_id}/retry"),
    ("POST", "/v1/alerts/{alert_id}/ack"),
}


@pytest.fixture(scope="module")
def roles_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    tmp = tmp_path_factory.mktemp("roles")
    cfg = AppConfig(cache=CacheConfig(enabled=False))
    with serve(tmp, cfg, load_models=False, scheduler=False) as svc:
        yield svc, svc.runtime.keys.create("wallboard", "viewer")


def _pairs(svc: Service) -> list[tuple[str, str]]:
    """Every (method, path) of the app's HTTP routes that is not a safe method."""
    return sorted(
        (method, str(route.path))
        for route in iter_route_contexts(svc.app.routes)
        for method in route.methods or ()
        if method not in SAFE_METHODS
    )


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "no-such-thing", path)


def test_a_viewer_key_is_refused_on_every_route_that_may_change_something(
    roles_service: tuple[Service, str],
) -> None:
    svc, viewer = roles_service
    pairs = _pairs(svc)
    changes = [p for p in pairs if p not in CHANGE_NOTHING]
    assert set(changes) >= KNOWN_CHANGES
    assert set(pairs) >= CHANGE_NOTHING
    with svc.client(viewer) as as_viewer, svc.client() as as_admin:
        for method, path in changes:
            r = as_viewer.request(method, _url(path), content=b"{}")
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            body = r.json()
            assert body["title"] == "Forbidden" and "viewer key" in body["detail"]
            # the same request with an admin key gets past the role check (and fails on
            # the made-up id or body, changing nothing)
            assert as_admin.request(method, _url(path), content=b"{}").status_code != 403
        for method, path in sorted(CHANGE_NOTHING):
            r = as_viewer.request(method, _url(path).replace("no-such-thing", "default"),
                                  content=b"policy: x\nrules: []\n",
                                  headers={"Content-Type": "application/yaml"})  # fmt: skip
            assert r.status_code != 403, (method, path, r.text)
        for path in ("/v1/calls", "/v1/policies", "/v1/alerts", "/v1/webhooks"):
            assert as_viewer.get(path).status_code == 200, path
        assert as_viewer.get("/openapi.json").status_code == 200


def test_a_viewer_cannot_stream_a_call_but_can_watch_the_wall(
    roles_service: tuple[Service, str],
) -> None:
    svc, viewer = roles_service
    base = svc.base_url.replace("http://", "ws://")

    def handshake(path: str) -> int:  # sync: no event loop of its own to clash with
        try:
            with connect(f"{base}{path}?api_key={viewer}", open_timeout=10):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    assert handshake("/v1/stream") == 403  # a call is stored, webhooks sent
    assert handshake("/v1/wall") == 101
    with httpx.Client(base_url=svc.base_url, timeout=10) as c:
        assert c.get("/v1/calls", headers={"X-API-Key": viewer}).status_code == 200


def test_keys_get_a_role_and_older_databases_keep_their_keys_as_admins(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as old:  # the key table as callsense made it before roles
        old.execute(
            "CREATE TABLE callsense_api_keys (name VARCHAR(64) PRIMARY KEY, key_id VARCHAR(12) "
            "NOT NULL UNIQUE, salt VARCHAR(32) NOT NULL, digest VARCHAR(64) NOT NULL, "
            "created_at FLOAT NOT NULL, revoked_at FLOAT, client_secret VARCHAR(64))"
        )
        old.execute(
            "INSERT INTO callsense_api_keys VALUES ('ops', '0123456789ab', '00', '00', 1.0, "
            "NULL, NULL)"
        )
    runner = CliRunner()
    url = f"sqlite:///{db}"
    created = runner.invoke(cli, ["keys", "create", "wallboard", "--role", "viewer", "--db", url])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[0]
    listed = runner.invoke(cli, ["keys", "list", "--db", url], env={"COLUMNS": "200"})
    rows = {line.split()[1]: line.split()[5] for line in listed.stdout.splitlines()
            if line.startswith("│")}  # fmt: skip
    assert rows == {"ops": "admin", "wallboard": "viewer"}
    engine = make_engine(url)
    try:
        keys = KeyStore(engine)
        caller = keys.identify(key)
        assert caller is not None and (caller.name, caller.role) == ("wallboard", "viewer")
        assert keys.role("ops") == "admin"
        admin = keys.identify(keys.create("boss"))
        assert admin is not None and admin.role == "admin"  # the default
    finally:
        engine.dispose()
    bad = runner.invoke(cli, ["keys", "create", "x", "--role", "root", "--db", url])
    assert bad.exit_code != 0
