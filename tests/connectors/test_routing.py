"""Routing adapters against a local server that checks method, path, auth and body."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qs

import pytest

from callsense.connectors.routing_config import RoutingConfig, route_decision
from callsense.core.errors import ConfigError, InputError, RetryableError
from callsense.rules.model import Decision
from tests.connectors.sigv4 import (
    SignatureRejected,
    Signed,
    WireRequest,
    canonical_request,
    string_to_sign,
    verify_sigv4,
)

from .conftest import Receiver, Recorded, Reply


def route(call_id: str = "CA123", **params: object) -> Decision:
    return Decision(call_id, "default", "vip_angry", "route", dict(params), 3.0, (), "abc")


def config(**target: object) -> RoutingConfig:
    return RoutingConfig.model_validate({"routing": [{"name": "cc", **target}]})


def test_twilio_updates_the_call_with_enqueue_twiml(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC0001")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok-secret")
    cfg = config(kind="twilio", base_url=receiver.url)
    assert route_decision(route(queue="vip & urgent"), cfg) == 200
    (req,) = receiver.requests
    assert (req.method, req.path) == ("POST", "/2010-04-01/Accounts/AC0001/Calls/CA123.json")
    assert (
        req.headers["authorization"] == "Basic " + base64.b64encode(b"AC0001:tok-secret").decode()
    )
    assert req.headers["content-type"] == "application/x-www-form-urlencoded"
    form = parse_qs(req.body.decode())
    assert form == {"Twiml": ["<Response><Enqueue>vip &amp; urgent</Enqueue></Response>"]}

    route_decision(route(number="+15550100", call_sid="CA999"), cfg)
    dial = receiver.requests[1]
    assert dial.path.endswith("/Calls/CA999.json")
    assert parse_qs(dial.body.decode())["Twiml"] == ["<Response><Dial>+15550100</Dial></Response>"]
    with pytest.raises(InputError, match=r"queue or params\.number"):
        route_decision(route(), cfg)


AWS_SUITE = {"access_key": "AKIDEXAMPLE", "region": "us-east-1", "service": "service"}
AWS_SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@dataclass(frozen=True, slots=True)
class SuiteCase:
    request: WireRequest
    creq: str
    sts: str
    authz: str


GET_VANILLA = SuiteCase(
    WireRequest(
        "GET", "/", {"Host": "example.amazonaws.com", "X-Amz-Date": "20150830T123600Z"}, b""
    ),
    "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
    "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    "SignedHeaders=host;x-amz-date, "
    "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
)
POST_X_WWW_FORM_URLENCODED = SuiteCase(  # a signed body and Content-Type, like the product's
    WireRequest(
        "POST",
        "/",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            "Host": "example.amazonaws.com",
            "X-Amz-Date": "20150830T123600Z",
        },
        b"Param1=value1",
    ),
    "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
    "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
    "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
    "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
    "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, "
    "Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
)


def _with_headers(request: WireRequest, **changes: str) -> WireRequest:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in changes}
    return WireRequest(request.method, request.target, headers | changes, request.body)


@pytest.mark.parametrize(
    "case", [GET_VANILLA, POST_X_WWW_FORM_URLENCODED], ids=["get-vanilla", "post-x-www-form"]
)
def test_sigv4_verifier_reproduces_the_aws_test_suite(case: SuiteCase) -> None:
    """The verifier itself, step by step, against AWS's published expected values."""
    signed = Signed.parse(case.authz)
    creq = canonical_request(case.request, signed.signed_headers)
    assert creq == case.creq
    assert string_to_sign("20150830T123600Z", signed.scope, creq) == case.sts
    request = _with_headers(case.request, authorization=case.authz)
    assert verify_sigv4(request, secret=AWS_SUITE_SECRET, **AWS_SUITE) == signed

    wrong_secret = AWS_SUITE_SECRET.replace("EXAMPLEKEY", "EXAMPLEKEZ")
    with pytest.raises(SignatureRejected, match="SignatureDoesNotMatch"):
        verify_sigv4(request, secret=wrong_secret, **AWS_SUITE)
    changed = [
        WireRequest(request.method, request.target, request.headers, request.body + b"x"),
        WireRequest(request.method, "/other", request.headers, request.body),
        WireRequest("PUT", request.target, request.headers, request.body),
        _with_headers(request, host="example.amazonaws.com.evil"),
        _with_headers(request, **{"x-amz-date": "20150830T123601Z"}),
    ]
    for tampered in changed:
        with pytest.raises(SignatureRejected, match="SignatureDoesNotMatch"):
            verify_sigv4(tampered, secret=AWS_SUITE_SECRET, **AWS_SUITE)
    with pytest.raises(SignatureRejected, match="credential scope"):
        verify_sigv4(request, secret=AWS_SUITE_SECRET, **(AWS_SUITE | {"region": "eu-west-2"}))
    with pytest.raises(SignatureRejected, match="x-amz-\\* header must be signed"):
        verify_sigv4(
            _with_headers(request, **{"x-amz-security-token": "t"}),
            secret=AWS_SUITE_SECRET,
            **AWS_SUITE,
        )


CONNECT_KEY = "AKIDCONNECT7"
CONNECT_SECRET = "tEst/Secret+Key/For/Amazon/Connect0000000"


def test_amazon_connect_update_contact_attributes_is_sigv4_signed(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", CONNECT_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", CONNECT_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    cfg = config(
        kind="amazon_connect", region="eu-west-2", instance_id="inst-1", base_url=receiver.url
    )
    route_decision(route(contact_id="contact-7", attributes={"tier": "vip", "angry": 1}), cfg)
    (req,) = receiver.requests
    assert (req.method, req.path) == ("POST", "/contact/attributes")
    assert json.loads(req.body) == {
        "InstanceId": "inst-1",
        "InitialContactId": "contact-7",
        "Attributes": {"tier": "vip", "angry": "1"},
    }
    # what arrived on the wire, verified as Amazon Connect would (independently of botocore)
    wire = WireRequest(req.method, req.path, req.headers, req.body)
    connect = {"access_key": CONNECT_KEY, "region": "eu-west-2", "service": "connect"}
    signed = verify_sigv4(wire, secret=CONNECT_SECRET, **connect)
    amz_date = req.headers["x-amz-date"]
    assert signed.scope == f"{amz_date[:8]}/eu-west-2/connect/aws4_request"
    assert signed.signed_headers == ("content-type", "host", "x-amz-date")
    assert req.headers["host"] == receiver.url.removeprefix("http://")
    signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(signed_at.timestamp() - time.time()) < 300  # AWS refuses a skewed clock

    # the check bites: a changed body, another secret, region or service does not verify
    with pytest.raises(SignatureRejected, match="SignatureDoesNotMatch"):
        verify_sigv4(
            WireRequest(req.method, req.path, req.headers, req.body.replace(b"vip", b"vop")),
            secret=CONNECT_SECRET,
            **connect,
        )
    with pytest.raises(SignatureRejected, match="SignatureDoesNotMatch"):
        verify_sigv4(wire, secret=CONNECT_SECRET[:-1] + "1", **connect)
    with pytest.raises(SignatureRejected, match="credential scope"):
        verify_sigv4(wire, secret=CONNECT_SECRET, **(connect | {"region": "us-east-1"}))
    with pytest.raises(SignatureRejected, match="credential scope"):
        verify_sigv4(wire, secret=CONNECT_SECRET, **(connect | {"service": "s3"}))

    # temporary credentials: the session token travels in a header that is signed too
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token/7+")
    route_decision(route(contact_id="contact-8"), cfg)
    with_token = receiver.requests[1]
    assert with_token.headers["x-amz-security-token"] == "session-token/7+"
    signed = verify_sigv4(
        WireRequest(with_token.method, with_token.path, with_token.headers, with_token.body),
        secret=CONNECT_SECRET,
        **connect,
    )
    assert "x-amz-security-token" in signed.signed_headers


def test_genesys_patches_participant_attributes_with_bearer(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENESYS_ACCESS_TOKEN", "g-token")
    cfg = config(kind="genesys", base_url=receiver.url)
    route_decision(route("conv-1", participant_id="part-2", queue="billing"), cfg)
    (req,) = receiver.requests
    assert req.method == "PATCH"
    assert req.path == "/api/v2/conversations/calls/conv-1/participants/part-2/attributes"
    assert req.headers["authorization"] == "Bearer g-token"
    assert json.loads(req.body) == {
        "attributes": {
            "callsense_action": "route",
            "callsense_rule": "vip_angry",
            "callsense_queue": "billing",
        }
    }


def test_generic_http_and_error_classes(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTE_TOKEN", "r-token")
    cfg = config(kind="http", url=receiver.url + "/route", bearer_token_env="ROUTE_TOKEN")
    route_decision(route(queue="q"), cfg)
    (req,) = receiver.requests
    assert (req.method, req.path, req.headers["authorization"]) == (
        "POST",
        "/route",
        "Bearer r-token",
    )
    assert json.loads(req.body)["params"] == {"queue": "q"}
    receiver.script = [Reply(503), Reply(404)]
    with pytest.raises(RetryableError):
        route_decision(route(), cfg)
    with pytest.raises(InputError):
        route_decision(route(), cfg)
    monkeypatch.delenv("ROUTE_TOKEN")
    with pytest.raises(ConfigError, match="ROUTE_TOKEN is not set"):
        route_decision(route(), cfg)


def test_routing_config_rejects_unknown_kind_and_bad_url() -> None:
    with pytest.raises(ValueError, match="kind"):
        RoutingConfig.model_validate({"routing": [{"name": "x", "kind": "avaya"}]})
    with pytest.raises(ValueError, match="http:// or https://"):
        RoutingConfig.model_validate(
            {"routing": [{"name": "x", "kind": "genesys", "base_url": "ftp://x"}]}
        )


def _genesys_platform(receiver: Receiver, *, expires_in: int = 86399) -> list[str]:
    """The receiver plays Genesys Cloud: its login hands out numbered tokens, its API takes
    only the newest one. Returns the tokens handed out so far."""
    issued: list[str] = []

    def respond(req: Recorded) -> Reply:
        if req.path == "/oauth/token":
            issued.append(f"tok-{len(issued) + 1}")
            body = {"access_token": issued[-1], "token_type": "bearer", "expires_in": expires_in}
            return Reply(200, {"content-type": "application/json"}, body=json.dumps(body).encode())
        ok = issued and req.headers.get("authorization") == f"Bearer {issued[-1]}"
        return Reply(200 if ok else 401)

    receiver.responder = respond
    return issued


def _genesys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENESYS_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("GENESYS_CLIENT_ID", "client-7")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", "s3cret")


def test_genesys_signs_in_with_client_credentials_and_reuses_the_token(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _genesys_env(monkeypatch)
    issued = _genesys_platform(receiver)
    cfg = config(kind="genesys", base_url=receiver.url, login_url=receiver.url)
    for n in range(3):
        assert route_decision(route(f"conv-{n}", participant_id="p", queue="q"), cfg) == 200
    login, *patches = receiver.requests
    assert (login.method, login.path) == ("POST", "/oauth/token")
    assert (
        login.headers["authorization"] == "Basic " + base64.b64encode(b"client-7:s3cret").decode()
    )
    assert parse_qs(login.body.decode()) == {"grant_type": ["client_credentials"]}
    assert issued == ["tok-1"]  # one sign-in for three decisions
    assert [r.headers["authorization"] for r in patches] == ["Bearer tok-1"] * 3
    assert [r.method for r in patches] == ["PATCH"] * 3


def test_genesys_signs_in_again_on_401_and_before_expiry(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    _genesys_env(monkeypatch)
    monkeypatch.setenv("GENESYS_CLIENT_ID", "client-8")  # not the other test's cached token
    issued = _genesys_platform(receiver)
    cfg = config(kind="genesys", base_url=receiver.url, login_url=receiver.url)
    route_decision(route("conv-1", participant_id="p"), cfg)
    issued.append("tok-revoked-elsewhere")  # the platform now wants a newer token
    assert route_decision(route("conv-2", participant_id="p"), cfg) == 200
    paths = [r.path for r in receiver.requests]
    assert paths.count("/oauth/token") == 2  # the 401 led to one new sign-in, then success
    assert receiver.requests[-1].headers["authorization"] == f"Bearer {issued[-1]}"

    receiver.requests.clear()
    short = _genesys_platform(receiver, expires_in=30)  # inside the renewal margin
    monkeypatch.setenv("GENESYS_CLIENT_ID", "client-9")
    route_decision(route("conv-3", participant_id="p"), cfg)
    route_decision(route("conv-4", participant_id="p"), cfg)
    assert short == ["tok-1", "tok-2"]  # a token about to expire is not reused


def test_genesys_credentials_errors_are_clear(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("GENESYS_ACCESS_TOKEN", "GENESYS_CLIENT_ID", "GENESYS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    cfg = config(kind="genesys", base_url=receiver.url, login_url=receiver.url)
    with pytest.raises(ConfigError, match="GENESYS_ACCESS_TOKEN, or GENESYS_CLIENT_ID"):
        route_decision(route(participant_id="p"), cfg)
    assert receiver.requests == []
    monkeypatch.setenv("GENESYS_CLIENT_ID", "client-x")
    monkeypatch.setenv("GENESYS_CLIENT_SECRET", "wrong")
    receiver.script = [Reply(401)]
    with pytest.raises(ConfigError, match="refused the client credentials") as err:
        route_decision(route(participant_id="p"), cfg)
    assert "wrong" not in str(err.value)
    receiver.script = [Reply(503)]
    with pytest.raises(RetryableError, match="sign-in: HTTP 503"):
        route_decision(route(participant_id="p"), cfg)


def test_genesys_login_host_follows_the_region() -> None:
    from callsense.connectors.platforms.genesys import GenesysTarget

    target = GenesysTarget(name="g", kind="genesys", base_url="https://api.mypurecloud.de")
    assert target.token_url == "https://login.mypurecloud.de/oauth/token"
    with pytest.raises(ValueError, match="http:// or https://"):
        GenesysTarget(name="g", kind="genesys", login_url="ftp://login.example")
