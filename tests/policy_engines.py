"""The tests that assert policy decisions end to end run on both rules backends.

``policy_engine`` (module scope, parametrized over ``rules.backends.BACKENDS``: "python" and
"durable") is the ``policy_engine:`` value a test writes into the config of the command or
service it runs; ``tests/e2e`` and ``tests/service`` name it in their conftest. Then
``assert_backend`` checks that the matcher that decided is that backend's, and for
durable-rules that its C engine really holds the state the facts went to.
``matchers_built`` records the matchers of the engines built inside a block (the real ones:
nothing is replaced), for commands and routes whose engine the test cannot reach.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

import callsense.rules.engine
from callsense.rules.backends import BACKENDS, DurableMatcher, Matcher, PythonMatcher
from callsense.rules.compiler import Program

__all__ = ["assert_backend", "config_text", "matchers_built", "policy_engine"]

_CLASSES: dict[str, type[Matcher]] = {"python": PythonMatcher, "durable": DurableMatcher}
assert set(_CLASSES) == set(BACKENDS), "a new rules backend: teach tests/policy_engines.py"


@pytest.fixture(scope="module", params=BACKENDS)
def policy_engine(request: pytest.FixtureRequest) -> str:
    """The rules backend this module's decision tests run on, in turn each one."""
    backend: str = request.param
    return backend


def config_text(backend: str) -> str:
    """The config line that selects ``backend`` (pipeline.config.CallsenseConfig)."""
    return f"policy_engine: {backend}\n"


def assert_backend(matcher: Matcher, backend: str, *, used: bool = True) -> None:
    """``matcher`` is ``backend``'s; with ``used``, a durable one was fed facts that
    durable-rules itself holds state for (an open matcher: ``close`` drops the ruleset)."""
    assert type(matcher) is _CLASSES[backend], f"{type(matcher).__name__}, not {backend}"
    if used and isinstance(matcher, DurableMatcher):
        state = matcher.state()
        assert state is not None and state["sid"] == "0", state


@contextlib.contextmanager
def matchers_built() -> Iterator[list[Matcher]]:
    """The matchers of every ``PolicyEngine`` built inside the block, in order, from any
    thread (the engine's own ``make_matcher`` builds them; this only keeps a reference)."""
    built: list[Matcher] = []
    make = callsense.rules.engine.make_matcher

    def recording(program: Program, backend: str) -> Matcher:
        matcher = make(program, backend)
        built.append(matcher)
        return matcher

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callsense.rules.engine, "make_matcher", recording)
        yield built
