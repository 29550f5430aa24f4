"""Serve the web UI: ``/`` is the page, ``/static/<name>`` its few files.

The page holds no data of its own (everything comes from the authenticated API), so these
routes need no API key. Only the files shipped in ``static/`` can be served: the name is
looked up in a fixed table, never joined onto a path, so no request can walk the disk. The
Content-Security-Policy forbids inline and third-party scripts: transcripts are user data
and the page must stay safe even if one of them carried markup.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "router"]

STATIC_DIR = Path(__file__).resolve().with_name("static")

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # revalidate every time (ETag makes that cheap): an upgraded server never runs old JS
    "Cache-Control": "no-cache",
}


def _shipped_files() -> dict[str, Path]:
    return {
        p.name: p for p in sorted(STATIC_DIR.iterdir()) if p.is_file() and p.suffix in _MEDIA_TYPES
    }


_FILES = _shipped_files()

router = APIRouter(include_in_schema=False)


def _serve(path: Path) -> FileResponse:
    return FileResponse(path, media_type=_MEDIA_TYPES[path.suffix], headers=_HEADERS)


@router.get("/")
def index() -> FileResponse:
    """The single page; views are chosen by the URL fragment (``#/calls``, ``#/live``...)."""
    return _serve(_FILES["index.html"])


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    path = _FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no static file {name!r}")
    return _serve(path)
