"""AWS Signature Version 4, verified the way AWS would, from the spec's steps (hashlib and
hmac only): a check of the product's signatures that does not share botocore's signer."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

#
# Written from the published signing steps with hashlib/hmac only (no botocore, which is
# what the product signs with), and checked against AWS's own test-suite vectors below, so
# a mistake shared by the product's signer and this verifier cannot pass unnoticed.

SIGV4_ALGORITHM = "AWS4-HMAC-SHA256"
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<access_key>[^/\s,]+)/(?P<scope>[^\s,]+), "
    r"SignedHeaders=(?P<signed_headers>[^\s,]+), Signature=(?P<signature>[0-9a-f]{64})"
)
_UNRESERVED = "-_.~"  # RFC 3986 unreserved characters besides letters and digits


class SignatureRejected(Exception):
    """What AWS would answer with 403 (IncompleteSignature / SignatureDoesNotMatch)."""


@dataclass(frozen=True, slots=True)
class Signed:
    """The parts of an ``Authorization: AWS4-HMAC-SHA256 ...`` header."""

    access_key: str
    scope: str
    signed_headers: tuple[str, ...]
    signature: str

    @classmethod
    def parse(cls, authorization: str) -> Signed:
        match = _AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise SignatureRejected(f"malformed Authorization header: {authorization!r}")
        return cls(
            match["access_key"],
            match["scope"],
            tuple(match["signed_headers"].split(";")),
            match["signature"],
        )


@dataclass(frozen=True, slots=True)
class WireRequest:
    """A request as a server sees it: method, request target (path?query), headers, body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """The header's value: each one trimmed, runs of spaces made one, joined by commas."""
        found = [re.sub(" +", " ", v.strip()) for k, v in self.headers.items() if k.lower() == name]
        return ",".join(found) if found else None


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def canonical_uri(path: str) -> str:
    """The path URI-encoded (for services other than S3 the path as sent, encoded again)."""
    segments = path.split("/")
    if "." in segments or ".." in segments:
        raise SignatureRejected("dot segments: this verifier does not normalize paths")
    return quote(path or "/", safe="/" + _UNRESERVED)


def canonical_query(query: str) -> str:
    """Parameters URI-encoded, sorted by name then value, joined with ``&``."""
    pairs = []
    for part in query.split("&") if query else []:
        name, _, value = part.partition("=")
        pairs.append(
            (quote(unquote(name), safe=_UNRESERVED), quote(unquote(value), safe=_UNRESERVED))
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def canonical_request(request: WireRequest, signed_headers: tuple[str, ...]) -> str:
    """Task 1 of the signing process, for the headers the client says it signed."""
    path, _, query = request.target.partition("?")
    lines = []
    for name in signed_headers:
        value = request.header(name)
        if value is None:
            raise SignatureRejected(f"signed header {name!r} is not in the request")
        lines.append(f"{name}:{value}\n")
    return "\n".join(
        [
            request.method.upper(),
            canonical_uri(path),
            canonical_query(query),
            "".join(lines),
            ";".join(signed_headers),
            _sha256_hex(request.body),
        ]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    """Task 2: algorithm, request time, credential scope, hash of the canonical request."""
    return f"{SIGV4_ALGORITHM}\n{amz_date}\n{scope}\n{_sha256_hex(canonical.encode())}"


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """Task 3: kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
    "aws4_request")."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = _hmac_sha256(key, part)
    return key


def verify_sigv4(
    request: WireRequest, *, access_key: str, secret: str, region: str, service: str
) -> Signed:
    """Check the request's SigV4 signature as AWS would; raise ``SignatureRejected`` if not."""
    authorization = request.header("authorization")
    amz_date = request.header("x-amz-date")
    if authorization is None or amz_date is None:
        raise SignatureRejected("Authorization and X-Amz-Date are required")
    signed = Signed.parse(authorization)
    if signed.access_key != access_key:
        raise SignatureRejected(f"unknown access key {signed.access_key!r}")
    if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date):
        raise SignatureRejected(f"X-Amz-Date is not ISO 8601 basic format: {amz_date!r}")
    date = amz_date[:8]
    if signed.scope != f"{date}/{region}/{service}/aws4_request":
        raise SignatureRejected(f"credential scope {signed.scope!r} is not for {region}/{service}")
    names = signed.signed_headers
    if list(names) != sorted({n.lower() for n in names}):
        raise SignatureRejected(f"SignedHeaders not lowercase, sorted and unique: {names}")
    unsigned = {k.lower() for k in request.headers if k.lower().startswith("x-amz-")} - set(names)
    if "host" not in names or unsigned:
        raise SignatureRejected(f"host and every x-amz-* header must be signed: {names}")
    canonical = canonical_request(request, names)
    key = signing_key(secret, date, region, service)
    expected = hmac.new(
        key, string_to_sign(amz_date, signed.scope, canonical).encode(), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signed.signature):
        raise SignatureRejected("SignatureDoesNotMatch")
    return signed


# AWS's Signature Version 4 test suite (docs.aws.amazon.com/general/latest/gr/
# signature-v4-test-suite.html): the example credentials, and per request its
# .req, .creq, .sts and .authz files.
