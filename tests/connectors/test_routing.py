"""Routing adapters against a local server that checks method, path, auth and body."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from connectors.routing import RoutingConfig, route_decision
from rules.errors import ConfigError, InputError, RetryableError

from .conftest import Receiver, Recorded, Reply


def route(call_id: str = "CA123", **params: object) -> dict[str, object]:
    return {
        "call_id": call_id,
        "policy": "default",
        "rule": "vip_angry",
        "action": "route",
        "params": params,
        "at": 3.0,
        "evidence": [],
        "policy_hash": "abc",
    }


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


def test_amazon_connect_update_contact_attributes_is_sigv4_signed(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
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
    auth = req.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-2/connect/aws4_request" in auth
    # re-sign what arrived on the wire with the same clock: the signature must match
    check = AWSRequest(
        method="POST",
        url=receiver.url + req.path,
        data=req.body,
        headers={"Content-Type": req.headers["content-type"]},
    )
    check.context["timestamp"] = req.headers["x-amz-date"]
    signer = SigV4Auth(
        Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        "connect",
        "eu-west-2",
    )
    check.headers["X-Amz-Date"] = req.headers["x-amz-date"]
    signature = signer.signature(
        signer.string_to_sign(check, signer.canonical_request(check)), check
    )
    assert auth.endswith(f"Signature={signature}")


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
    from connectors.routing import GenesysTarget

    target = GenesysTarget(name="g", kind="genesys", base_url="https://api.mypurecloud.de")
    assert target.token_url == "https://login.mypurecloud.de/oauth/token"
    with pytest.raises(ValueError, match="http:// or https://"):
        GenesysTarget(name="g", kind="genesys", login_url="ftp://login.example")
