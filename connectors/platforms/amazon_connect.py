"""Amazon Connect: routing only (its audio reaches callsense through Kinesis, not a socket).

``UpdateContactAttributes`` = ``POST /contact/attributes`` JSON ``{InstanceId,
InitialContactId, Attributes}`` signed with AWS SigV4 (service ``connect``); the contact
flow branches on the attributes.
"""

from __future__ import annotations

import json
import os
from typing import Literal

import httpx
from pydantic import Field

from callsense.connectors.endpoint import RouteContext
from callsense.connectors.routing import Capabilities, RoutingAdapter, TargetBase, attributes, env
from callsense.rules.model import Decision

__all__ = ["AmazonConnectAdapter", "AmazonConnectTarget"]


class AmazonConnectTarget(TargetBase):
    kind: Literal["amazon_connect"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    instance_id: str
    base_url: str | None = None
    access_key_id_env: str = "AWS_ACCESS_KEY_ID"
    secret_access_key_env: str = "AWS_SECRET_ACCESS_KEY"
    session_token_env: str = "AWS_SESSION_TOKEN"


class AmazonConnectAdapter(RoutingAdapter):
    capabilities = Capabilities(transfer=False, attributes=True)
    target: AmazonConnectTarget

    def build_request(self, decision: Decision, context: RouteContext) -> httpx.Request:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        params = decision.params
        base = self.target.base_url or f"https://connect.{self.target.region}.amazonaws.com"
        body = json.dumps(
            {
                "InstanceId": self.target.instance_id,
                "InitialContactId": str(
                    params.get("contact_id") or context.contact_id or decision.call_id
                ),
                "Attributes": attributes(params, decision),
            }
        ).encode()
        creds = Credentials(
            env(self.target.access_key_id_env),
            env(self.target.secret_access_key_env),
            os.environ.get(self.target.session_token_env) or None,
        )
        aws = AWSRequest(
            method="POST",
            url=f"{base}/contact/attributes",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        SigV4Auth(creds, "connect", self.target.region).add_auth(aws)
        return httpx.Request(
            "POST",
            aws.url,
            content=body,
            headers=dict(aws.headers.items()),
            extensions={"timeout": httpx.Timeout(self.target.timeout_s).as_dict()},
        )
