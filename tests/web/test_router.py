"""The page and its files are served with safe headers; nothing outside static/ is."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from callsense.connectors.web.router import STATIC_DIR, router
from tests.web.conftest import serve


@pytest.fixture(scope="module")
def base_url():
    app = FastAPI()
    app.include_router(router)
    with serve(app) as url:
        yield url


def test_index_links_only_local_assets_and_forbids_inline_script(base_url: str) -> None:
    r = httpx.get(base_url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    refs = re.findall(r'(?:src|href)="([^"#]+)"', r.text)
    assert refs, "the page loads its script and stylesheet"
    for ref in refs:
        assert ref.startswith("/static/"), (
            f"{ref}: the browser has no network, assets must be local"
        )
        asset = httpx.get(base_url + ref)
        assert asset.status_code == 200, ref
    assert "<script>" not in r.text  # the CSP would block it: all code lives in app.js


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")],
)
def test_static_files_have_their_media_type(base_url: str, name: str, media_type: str) -> None:
    r = httpx.get(f"{base_url}/static/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media_type)
    assert r.content == (STATIC_DIR / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    ["/static/missing.js", "/static/..%2Frouter.py", "/static/%2E%2E%2F__init__.py", "/static/"],
)
def test_nothing_outside_the_shipped_files_is_served(base_url: str, path: str) -> None:
    r = httpx.get(base_url + path)
    assert r.status_code == 404
    assert "import" not in r.text  # no Python source leaked


def test_script_never_renders_data_as_markup() -> None:
    """Transcripts are user data: the UI must put them on the page as text only."""
    js = (STATIC_DIR / "app.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in js, sink
