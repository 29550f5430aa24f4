"""Signing per Standard Webhooks (checked by an independent verifier) and start-up validation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from callsense.connectors.templates import load_template, sample_decision
from callsense.connectors.webhooks import WebhooksConfig, parse_retry_after, signature_headers
from callsense.core.errors import ConfigError

from .helpers import decision


def spec_verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Re-derived from the spec text: base64 HMAC-SHA256 of '{id}.{ts}.{body}', v1 prefix."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(sig.partition(",")[2], expected)
        for sig in headers["webhook-signature"].split(" ")
        if sig.startswith("v1,")
    )


def test_signature_verifies_with_standardwebhooks_and_the_spec(secret: str) -> None:
    body = json.dumps({"type": "callsense.decision.escalate", "data": {"x": "é"}}).encode()
    headers = signature_headers(base64.b64decode(secret[6:]), "msg_abc123", body)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert Webhook(secret).verify(body, headers) == json.loads(body)
    assert spec_verify(secret, headers, body)
    tampered = body.replace(b"escalate", b"escalatE")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, headers)
    other = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    assert not spec_verify(other, headers, body)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callsense.yaml"
    path.write_text(text)
    return path


def test_minimal_form_from_the_issue_loads_among_other_keys(tmp_path: Path, secret: str) -> None:
    path = write(
        tmp_path,
        f"""\
recognizer: {{backend: replay}}
webhooks:
  - name: tickets
    url: http://127.0.0.1:9000/hook
    secret: {secret}      # Standard Webhooks secret format
    actions: [escalate]
""",
    )
    cfg = WebhooksConfig.from_file(path)
    (ep,) = cfg.webhooks
    assert (ep.name, ep.url, ep.actions, ep.template) == (
        "tickets",
        "http://127.0.0.1:9000/hook",
        ["escalate"],
        "generic",
    )
    assert secret not in repr(cfg)  # SecretStr keeps it out of logs and tracebacks
    assert ep.wants(decision(action="escalate")) and not ep.wants(decision(action="tag"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/hook", "url must be http:// or https://"),
        ("file:///etc/passwd", "url must be http:// or https://"),
        ("http:///nohost", "url has no host"),
        ("https://example.com:99999/x", "url is not valid"),
        ("127.0.0.1:9000/hook", "url must be http:// or https://"),
    ],
)
def test_bad_url_is_a_startup_config_error_with_line(
    tmp_path: Path, secret: str, url: str, message: str
) -> None:
    path = write(
        tmp_path,
        f"webhooks:\n  - name: t\n    secret: {secret}\n    url: {url}\n",
    )
    with pytest.raises(ConfigError) as err:
        WebhooksConfig.from_file(path)
    text = str(err.value)
    assert f"{path}:4: webhooks[0].url:" in text
    assert message in text


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("supersecret", "must start with whsec_"),
        ("whsec_!!!notbase64", "not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "decodes to 5 bytes"),
    ],
)
def test_bad_secret_is_a_config_error(tmp_path: Path, secret: str, message: str) -> None:
    path = write(
        tmp_path, f"webhooks:\n  - name: t\n    url: http://x.test/\n    secret: '{secret}'\n"
    )
    with pytest.raises(ConfigError) as err:
        WebhooksConfig.from_file(path)
    assert f"{path}:2: webhooks[0]: secret: " in str(err.value)
    assert message in str(err.value)
    assert secret not in str(err.value)  # never echoed back, not even when wrong


def test_tls_and_template_problems_fail_at_startup(tmp_path: Path, secret: str) -> None:
    missing_ca = write(
        tmp_path,
        f"webhooks:\n  - name: t\n    url: https://x.test/\n    secret: {secret}\n"
        "    ca_file: /nonexistent/ca.pem\n",
    )
    with pytest.raises(ConfigError, match=r":5: webhooks\[0\]\.ca_file: Path does not point"):
        WebhooksConfig.from_file(missing_ca)

    freshdesk_without_requester = write(
        tmp_path,
        f"webhooks:\n  - name: fd\n    url: https://x.test/\n    secret: {secret}\n"
        "    template: freshdesk\n",
    )
    with pytest.raises(ConfigError, match="requester_email"):
        WebhooksConfig.from_file(freshdesk_without_requester)

    unknown = write(
        tmp_path,
        f"webhooks:\n  - name: t\n    url: https://x.test/\n    secret: {secret}\n"
        "    template: servicenow\n    timout_s: 3\n",
    )
    with pytest.raises(ConfigError) as err:
        WebhooksConfig.from_file(unknown)
    assert "unknown template 'servicenow'" in str(err.value)
    assert ":6: webhooks[0].timout_s: unknown field" in str(err.value)


def test_broken_user_template_names_its_own_file_and_line(tmp_path: Path, secret: str) -> None:
    tpl = tmp_path / "mine.yaml"
    tpl.write_text("name: mine\nbody:\n  a: '{{ decision.call_id '\n")
    path = write(
        tmp_path,
        f"webhooks:\n  - name: t\n    url: https://x.test/\n    secret: {secret}\n"
        f"    template: {tpl}\n",
    )
    with pytest.raises(ConfigError, match=r"body\.a: Jinja syntax error"):
        WebhooksConfig.from_file(path)


def test_env_references_are_expanded_and_missing_ones_fail(
    tmp_path: Path, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        "webhooks:\n  - name: t\n    url: https://x.test/\n    secret: ${CS_TEST_SECRET}\n"
        "    headers: {Authorization: 'Bearer ${CS_TEST_TOKEN}'}\n",
    )
    monkeypatch.setenv("CS_TEST_SECRET", secret)
    monkeypatch.delenv("CS_TEST_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="CS_TEST_TOKEN is not set"):
        WebhooksConfig.from_file(path)
    monkeypatch.setenv("CS_TEST_TOKEN", "tok")
    ep = WebhooksConfig.from_file(path).webhooks[0]
    assert ep.headers == {"Authorization": "Bearer tok"}
    assert ep.secret.get_secret_value() == secret


@pytest.mark.parametrize(
    ("template", "vars", "expected"),
    [
        ("zendesk", {}, {"ticket.priority": "urgent"}),
        ("freshdesk", {"requester_email": "ops@example.com"}, {"priority": 4, "status": 2}),
        (
            "jira_sm",
            {"service_desk_id": 10, "request_type_id": 25},
            {"requestFieldValues.priority.name": "Highest", "serviceDeskId": "10"},
        ),
        ("generic", {}, {"type": "callsense.decision.escalate", "data.params.priority": "urgent"}),
    ],
)
def test_ticket_templates_map_escalation_priority(
    template: str, vars: dict[str, object], expected: dict[str, object]
) -> None:
    d = sample_decision() | {"params": {"priority": "urgent", "reason": "r"}}
    body = load_template(template).render(
        d, webhook_id="msg_1", decision_id="dec_1", enqueued_at="2024-01-01T00:00:00Z", vars=vars
    )
    json.dumps(body)
    for dotted, value in expected.items():
        node = body
        for part in dotted.split("."):
            node = node[part]
        assert node == value, dotted


def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    now = time.time()
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 30))
    assert 28 <= (parse_retry_after(date, now) or 0) <= 31
    assert parse_retry_after("soon") is None


def test_a_policy_webhook_action_goes_to_the_endpoint_it_names(secret: str) -> None:
    cfg = WebhooksConfig.model_validate(
        {
            "webhooks": [
                {"name": name, "url": f"https://{name}.example.com/h", "secret": secret,
                 "actions": ["webhook", "escalate"]}
                for name in ("crm", "tickets")
            ]
        }
    )  # fmt: skip
    crm, tickets = cfg.webhooks
    named = decision(action="webhook", rule="r", params={"endpoint": "tickets"})
    assert (crm.wants(named), tickets.wants(named)) == (False, True)
    unnamed = decision(action="webhook", rule="r", params={})
    assert crm.wants(unnamed) and tickets.wants(unnamed)
    escalate = decision(action="escalate", rule="r", params={"endpoint": "tickets"})
    assert crm.wants(escalate)  # only the webhook action is addressed by name
