"""What every router shares: the runtime dependency, RFC 7807 problem details, and request
bodies read with a size limit while they stream in (never after the whole body arrived).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from python_multipart.multipart import MultipartParser, parse_options_header

from callsense.connectors.runtime import Runtime

__all__ = [
    "PROBLEM_RESPONSES",
    "Deleted",
    "Problem",
    "ProblemDetails",
    "RuntimeDep",
    "Upload",
    "get_runtime",
    "problem_response",
    "read_body",
    "receive_multipart",
]

PROBLEM_TYPE = "about:blank"
_FIELD_LIMIT = 4096
_MAX_PARTS = 16
_SUFFIX_RE = re.compile(r"\.[A-Za-z0-9]{1,8}")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class ProblemDetails(BaseModel):
    """RFC 7807 ``application/problem+json``; ``problems`` lists ``file:line: field: message``."""

    model_config = ConfigDict(extra="allow")

    type: str = PROBLEM_TYPE
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    problems: list[str] | None = None
    request_id: str | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ProblemDetails, "content": {"application/problem+json": {}}}
    for code in (400, 401, 403, 404, 409, 413, 422, 503)
}


class Deleted(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    deleted: bool = True


class Problem(Exception):  # the response, not a failure of ours
    """Raise from a handler to answer with problem details."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        problems: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.problems = problems
        self.headers = headers


def problem_response(
    request: Request,
    status: int,
    title: str,
    detail: str | None = None,
    *,
    problems: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemDetails(
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        problems=problems,
        request_id=getattr(request.state, "request_id", None),
    )
    return JSONResponse(
        body.model_dump(exclude_none=True),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "Payload Too Large",
        f"the upload is larger than the limit of {limit / 1048576:g} MiB (max_upload_mb)",
        headers={"Connection": "close"},
    )


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value and value.isdigit() else None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it passes ``limit`` bytes."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(slots=True)
class Upload:
    """A streamed multipart form: text fields, and the one file part written to disk."""

    fields: dict[str, str] = field(default_factory=dict)
    file_field: str | None = None
    filename: str | None = None
    path: Path | None = None
    size: int = 0

    @property
    def suffix(self) -> str:
        """The file name's extension if it is a plain one (``.wav``), else ``""``."""
        suffix = Path(self.filename or "").suffix
        return suffix.lower() if _SUFFIX_RE.fullmatch(suffix) else ""

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def receive_multipart(request: Request, directory: Path, limit: int) -> Upload:
    """Parse ``multipart/form-data`` as it streams: the file part goes to a temporary file in
    ``directory``, counted chunk by chunk (413 past ``limit``). The client's file name is
    kept only as a label; it never becomes a path."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise Problem(415, "Unsupported Media Type", "expected multipart/form-data")
    declared = _declared_length(request)
    if declared is not None and declared > limit + 65536:
        raise too_large(limit)
    directory.mkdir(parents=True, exist_ok=True)
    upload = Upload()
    state: dict[str, Any] = {
        "headers": {},
        "field": b"",
        "value": b"",
        "name": None,
        "is_file": False,
        "buf": bytearray(),
        "fh": None,
        "parts": 0,
        "error": None,
    }

    def on_part_begin() -> None:
        state["headers"] = {}
        state["parts"] += 1
        if state["parts"] > _MAX_PARTS:
            state["error"] = Problem(400, "Bad Request", f"more than {_MAX_PARTS} form parts")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, opts = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name", b"").decode("utf-8", "replace")
        state["name"] = name
        state["buf"] = bytearray()
        if b"filename" in opts and upload.path is None:
            upload.file_field = name
            upload.filename = opts[b"filename"].decode("utf-8", "replace")[:255]
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-", suffix=".part")
            upload.path = Path(tmp)
            state["fh"] = os.fdopen(fd, "wb")
            state["is_file"] = True
        else:
            state["is_file"] = False

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["error"] is not None:
            return
        chunk = data[start:end]
        if state["is_file"]:
            upload.size += len(chunk)
            if upload.size > limit:
                state["error"] = too_large(limit)
                return
            state["fh"].write(chunk)
        else:
            state["buf"] += chunk
            if len(state["buf"]) > _FIELD_LIMIT:
                state["error"] = Problem(
                    400,
                    "Bad Request",
                    f"form field {state['name']!r} is longer than {_FIELD_LIMIT} bytes",
                )

    def on_part_end() -> None:
        if state["is_file"]:
            state["fh"].close()
            state["fh"] = None
        elif state["name"]:
            upload.fields[state["name"]] = bytes(state["buf"]).decode("utf-8", "replace")

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            if state["error"] is not None:
                raise state["error"]
        parser.finalize()
    except Problem:
        _close(state)
        upload.discard()
        raise
    except Exception as exc:  # a malformed body from the client
        _close(state)
        upload.discard()
        raise Problem(
            400, "Bad Request", f"malformed multipart body ({type(exc).__name__})"
        ) from None
    _close(state)
    return upload


def _close(state: dict[str, Any]) -> None:
    if state.get("fh") is not None:
        with contextlib.suppress(OSError):
            state["fh"].close()
        state["fh"] = None
