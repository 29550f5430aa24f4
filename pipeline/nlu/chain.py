"""Runs the configured hooks on one utterance and never lets one of them kill the call.

Chain semantics (``chain.strategy`` in intents.yaml):
- ``first``: hooks are asked in file order; the first answer with confidence >=
  ``min_confidence`` wins and later hooks are not asked.
- ``highest``: every hook is asked; the most confident answer >= ``min_confidence`` wins,
  a tie goes to the hook listed first.
A hook that fails (``HookFailure`` or any other exception) counts as "no intent" and adds
a ``HookError``; a hook with a circuit breaker that failed ``failures`` times in a row is
skipped for ``cooldown_s`` seconds, which is reported once as ``circuit_open``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from callsense.core.errors import ConfigError
from callsense.core.yamlsource import Located, load_yaml, validate_data
from callsense.pipeline.model import Utterance
from callsense.pipeline.nlu.base import HookError, HookFailure, Intent, IntentHook
from callsense.pipeline.nlu.config import BreakerConfig, ChainConfig, IntentsConfig
from callsense.pipeline.nlu.registry import build_hook

__all__ = ["IntentClassifier", "NluResult", "load_intents_config"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NluResult:
    """The chain's answer for one utterance: its intent (or None) and any hook failures."""

    intent: Intent | None
    errors: tuple[HookError, ...] = ()


@dataclass(slots=True)
class _Slot:
    hook: IntentHook
    breaker: BreakerConfig | None
    failures: int = 0
    open_until: float = 0.0
    reported_open: bool = False


def load_intents_config(path: str | Path) -> tuple[IntentsConfig, Located]:
    """Validate intents.yaml; cross-field problems also name their file and line."""
    src = load_yaml(path)
    cfg = validate_data(IntentsConfig, src)
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, hook in enumerate(cfg.hooks):
        if hook.name in seen:
            line = src.line_of(("hooks", i, "name"))
            problems.append(
                f"{src.file}:{line}: hooks[{i}].name: {hook.name!r} is already used by "
                f"hooks[{seen[hook.name]}]; hook names must be unique"
            )
        seen.setdefault(hook.name, i)
        targets = getattr(hook, "intent_map", {})
        for rasa_name, ours in targets.items():
            if ours not in cfg.intents:
                line = src.line_of(("hooks", i, "intent_map", rasa_name))
                problems.append(
                    f"{src.file}:{line}: hooks[{i}].intent_map.{rasa_name}: {ours!r} is not "
                    f"an intent of this file (known: {', '.join(cfg.intents)})"
                )
    if problems:
        raise ConfigError(problems[0], file=src.file, problems=problems)
    return cfg, src


class IntentClassifier:
    """The NLU stage: ``classify(utterance) -> NluResult``, safe to call in a live call."""

    def __init__(
        self,
        hooks: Sequence[IntentHook],
        chain: ChainConfig | None = None,
        *,
        breakers: Sequence[BreakerConfig | None] | None = None,
        intent_names: Sequence[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain or ChainConfig()
        brk = list(breakers) if breakers is not None else [None] * len(hooks)
        self._slots = [_Slot(h, b) for h, b in zip(hooks, brk, strict=True)]
        self.intent_names = tuple(intent_names)
        self._clock = clock

    @classmethod
    def load(
        cls, path: str | Path, *, clock: Callable[[], float] = time.monotonic
    ) -> IntentClassifier:
        """Build every enabled hook now: a hook that cannot start is a ``ConfigError``."""
        cfg, src = load_intents_config(path)
        hooks: list[IntentHook] = []
        breakers: list[BreakerConfig | None] = []
        for i, hcfg in enumerate(cfg.hooks):
            if not hcfg.enabled:
                continue
            try:
                hooks.append(build_hook(hcfg, cfg))
            except HookFailure as exc:
                for hook in hooks:
                    hook.close()
                raise ConfigError(
                    f"hook {hcfg.name!r} cannot start: {exc.message}",
                    file=src.file,
                    line=src.line_of(("hooks", i)),
                    field=f"hooks[{i}]",
                ) from None
            breakers.append(hcfg.breaker)
        if not hooks:
            raise ConfigError(
                "every hook is disabled; enable at least one",
                file=src.file,
                line=src.line_of(("hooks",)),
                field="hooks",
            )
        return cls(hooks, cfg.chain, breakers=breakers, intent_names=list(cfg.intents), clock=clock)

    @property
    def hooks(self) -> tuple[IntentHook, ...]:
        return tuple(s.hook for s in self._slots)

    def wants(self, utt: Utterance) -> bool:
        """NLU runs on speech from the configured speakers (customers by default)."""
        return (
            utt.source == "speech" and utt.speaker in self.chain.speakers and bool(utt.text.strip())
        )

    def classify(self, utt: Utterance) -> NluResult:
        if not self.wants(utt):
            return NluResult(None)
        return self.classify_text(utt.text, utt.lang, call_id=utt.call_id)

    def classify_text(self, text: str, lang: str | None, *, call_id: str = "") -> NluResult:
        errors: list[HookError] = []
        best: Intent | None = None
        for slot in self._slots:
            if not slot.hook.caps.accepts(lang):
                continue
            intent = self._ask(slot, text, lang, call_id, errors)
            if intent is None or intent.confidence < self.chain.min_confidence:
                continue
            if self.chain.strategy == "first":
                return NluResult(intent, tuple(errors))
            if best is None or intent.confidence > best.confidence:
                best = intent
        return NluResult(best, tuple(errors))

    def _ask(
        self, slot: _Slot, text: str, lang: str | None, call_id: str, errors: list[HookError]
    ) -> Intent | None:
        name = slot.hook.name
        now = self._clock()
        if slot.open_until > now:
            if not slot.reported_open:
                slot.reported_open = True
                errors.append(
                    HookError(name, call_id, "circuit_open", "skipped after repeated failures")
                )
            return None
        try:
            intent = slot.hook.classify(text, lang)
            if intent is not None and not (
                isinstance(intent, Intent) and 0.0 <= intent.confidence <= 1.0
            ):
                raise HookFailure("bad_response", "hook returned an invalid intent")
        except HookFailure as exc:
            err = HookError(name, call_id, exc.kind, exc.message)
        except Exception as exc:  # isolation: any bug in a hook is data, not a dead call
            err = HookError(name, call_id, "error", type(exc).__name__)
        else:
            slot.failures = 0
            slot.reported_open = False
            return intent
        log.warning("nlu hook failed: call=%s hook=%s kind=%s", call_id, name, err.kind)
        errors.append(err)
        slot.failures += 1
        if slot.breaker is not None and slot.failures >= slot.breaker.failures:
            slot.open_until = now + slot.breaker.cooldown_s
            slot.failures = 0
        return None

    def close(self) -> None:
        for slot in self._slots:
            try:
                slot.hook.close()
            except Exception:  # closing must not mask the real shutdown reason
                log.warning("nlu hook %s failed to close", slot.hook.name)
