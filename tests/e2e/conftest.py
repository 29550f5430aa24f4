"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from tests import policy_engines

policy_engine = policy_engines.policy_engine  # each rules backend in turn (decision tests)
