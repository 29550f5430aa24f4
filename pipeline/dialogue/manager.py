"""The dialogue manager: per-call state machine from utterances, intents and decisions
to reply texts. Deterministic: the same inputs give the same replies, no clocks inside
(cooldowns count audio seconds).

For each utterance, in this order:
1. the built-in behaviours (``handoff``, ``deescalate``, ``closing``), then ``global``
   transitions: the first that matches fires (at most one);
2. each ``reply`` decision says its template;
3. unless step 1 moved to another state or ended the dialogue, the current state's
   first matching transition fires.
A transition with ``end: true`` (the default handoff) makes the bot fall silent for the
rest of the call: a human has taken over. A ``final`` state does the same.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from callsense.core.errors import ConfigError, InputError
from callsense.core.yamlsource import Located, load_yaml, load_yaml_text, validate_data
from callsense.pipeline.dialogue.config import (
    DialogueConfig,
    Transition,
    When,
    check_references,
    template_fields,
)
from callsense.pipeline.model import Utterance
from callsense.pipeline.nlu.base import Intent

__all__ = ["DecisionLike", "DialogueManager", "DialogueSession", "Reply"]

log = logging.getLogger(__name__)


class DecisionLike(Protocol):
    """What the dialogue needs of a policy decision (``rules.model.Decision`` fits)."""

    @property
    def rule(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Reply:
    """One line for the bot to say; ``at`` is the audio second it became due.

    ``reason`` says why (``start``, ``disclosure``, ``behaviour:deescalate``,
    ``decision:<rule>``, ``state:<state>[<i>]``, ``global[<i>]``).
    """

    text: str
    lang: str
    reason: str
    at: float
    template: str


class DialogueManager:
    """A loaded, checked flow; ``open`` gives one session per call."""

    def __init__(self, config: DialogueConfig, *, source: str = "<dialogue>") -> None:
        self.config = config
        self.source = source

    @classmethod
    def load(cls, path: str | Path, *, intents: Iterable[str] | None = None) -> DialogueManager:
        """Load and check a flow; with ``intents`` every intent a flow names must exist."""
        return cls._from_located(load_yaml(path), intents)

    @classmethod
    def from_text(
        cls, text: str, file: str = "<dialogue>", *, intents: Iterable[str] | None = None
    ) -> DialogueManager:
        return cls._from_located(load_yaml_text(text, file), intents)

    @classmethod
    def _from_located(cls, src: Located, intents: Iterable[str] | None) -> DialogueManager:
        cfg = validate_data(DialogueConfig, src)
        problems = check_references(cfg, src, intents=intents)
        if problems:
            raise ConfigError(problems[0], file=src.file, problems=problems)
        return cls(cfg, source=src.file)

    @property
    def template_names(self) -> frozenset[str]:
        """For ``policy check``: a ``reply`` action must name one of these."""
        return frozenset(self.config.templates)

    def open(
        self, call_id: str, lang: str | None = None, *, variables: Mapping[str, str] | None = None
    ) -> DialogueSession:
        unknown = sorted(set(variables or {}) - set(self.config.variables))
        if unknown:
            raise InputError(
                f"unknown dialogue variable(s) {', '.join(unknown)}; "
                f"{self.source} declares: {', '.join(self.config.variables) or 'none'}"
            )
        return DialogueSession(self, call_id, lang, dict(variables or {}))

    def resolve_lang(self, lang: str | None) -> str:
        """The reply language for a spoken one: itself, its fallback, or the default."""
        cfg = self.config
        if lang in cfg.languages:
            return lang
        if lang is not None and cfg.lang_fallbacks.get(lang) in cfg.languages:
            return cfg.lang_fallbacks[lang]
        return cfg.default_lang

    def render(self, template: str, lang: str, context: Mapping[str, Any]) -> tuple[str, str]:
        """Text of ``template`` in ``lang`` (or its fallback) and the language used.

        With a list of alternatives the first whose variables are all non-empty wins
        (so ``Hello {customer_name}`` gives way to ``Hello`` when the name is unknown).
        """
        by_lang = self.config.templates[template]
        use = lang
        if use not in by_lang:
            use = self.resolve_lang(use)
        if use not in by_lang:
            use = self.config.default_lang
        texts = by_lang[use]
        options = texts if isinstance(texts, list) else [texts]
        chosen = options[-1]
        for option in options:
            if all(_filled(context.get(f)) for f in template_fields(option)):
                chosen = option
                break
        values = {
            f: "" if context.get(f) is None else str(context[f]) for f in template_fields(chosen)
        }
        return chosen.format_map(values), use


def _filled(value: Any) -> bool:
    return value is not None and value != ""


def _one_of(value: str | None, wanted: list[str] | None) -> bool:
    return wanted is None or value in wanted


class DialogueSession:
    """One call's dialogue state. Not thread-safe: feed one call's utterances in order."""

    def __init__(
        self, dm: DialogueManager, call_id: str, lang: str | None, variables: dict[str, str]
    ) -> None:
        self.dm = dm
        self.call_id = call_id
        self.lang = dm.resolve_lang(lang)
        self._vars = {**dm.config.variables, **variables}
        self.slots: dict[str, Any] = dict(dm.config.slots)
        self.state = dm.config.start.state
        self.ended = False
        self.replies: list[Reply] = []
        self.errors: list[str] = []
        self._started = False
        self._fired_once: set[str] = set()
        self._last_fired: dict[str, float] = {}

    # -- public API -----------------------------------------------------------------

    def start(self) -> list[Reply]:
        """The opening lines (greeting, then the disclosure); empty when called again."""
        if self._started:
            return []
        self._started = True
        cfg = self.dm.config
        ctx = self._context(None, None, ())
        out = [self._say(t, ctx, "start", 0.0) for t in cfg.start.say]
        if cfg.disclosure.enabled and cfg.disclosure.template not in cfg.start.say:
            out.append(self._say(cfg.disclosure.template, ctx, "disclosure", 0.0))
        self.replies.extend(out)
        return out

    def disclosure(self) -> Reply | None:
        """The disclosure line alone, for a caller that plays it itself."""
        cfg = self.dm.config
        if not cfg.disclosure.enabled:
            return None
        return self._say(cfg.disclosure.template, self._context(None, None, ()), "disclosure", 0.0)

    def on_utterance(
        self,
        utt: Utterance,
        intent: Intent | str | None = None,
        decisions: Sequence[DecisionLike] = (),
    ) -> list[Reply]:
        """Replies due after ``utt`` (its intent and the decisions it triggered)."""
        if self.ended:
            return []
        intent_name = intent.name if isinstance(intent, Intent) else intent
        if utt.speaker == "customer" and utt.source == "speech" and utt.lang in _SPOKEN:
            self.lang = self.dm.resolve_lang(utt.lang)
        ctx = self._context(utt, intent_name, decisions)
        at = utt.end
        out: list[Reply] = []
        moved = False

        cfg = self.dm.config
        candidates: list[tuple[str, str, Transition]] = [
            (f"behaviour:{name}", f"behaviour:{name}", tr)
            for name in ("handoff", "deescalate", "closing")
            if (tr := getattr(cfg.behaviours, name)) is not None
        ]
        candidates += [(f"global[{i}]", f"global[{i}]", tr) for i, tr in enumerate(cfg.global_)]
        for key, reason, tr in candidates:
            if self._matches(tr, utt, intent_name, decisions, at, key):
                out += self._fire(tr, key, reason, ctx, at)
                moved = tr.goto is not None or tr.end
                break

        for d in decisions:
            if d.action == "reply" and not self.ended:
                template = d.params.get("template")
                if isinstance(template, str) and template in cfg.templates:
                    out.append(self._say(template, ctx, f"decision:{d.rule}", at))
                else:
                    self.errors.append(f"decision {d.rule}: no dialogue template {template!r}")
                    log.warning(
                        "call=%s rule=%s names an unknown reply template", self.call_id, d.rule
                    )

        state = cfg.states[self.state]
        if not moved and not self.ended and not state.final:
            for i, tr in enumerate(state.transitions):
                key = f"state:{self.state}[{i}]"
                if self._matches(tr, utt, intent_name, decisions, at, key):
                    out += self._fire(tr, key, key, self._context(utt, intent_name, decisions), at)
                    break
        if cfg.states[self.state].final:
            self.ended = True
        self.replies.extend(out)
        return out

    # -- internals ----------------------------------------------------------------

    def _context(
        self, utt: Utterance | None, intent: str | None, decisions: Sequence[DecisionLike]
    ) -> dict[str, Any]:
        ctx: dict[str, Any] = dict(self._vars)
        for d in decisions:  # e.g. a route decision's queue fills {queue}
            for k, v in d.params.items():
                if k in self._vars and isinstance(v, (str, int, float)) and not isinstance(v, bool):
                    ctx[k] = str(v)
        ctx.update(self.slots)
        ctx.update(
            call_id=self.call_id,
            intent=intent,
            emotion=utt.emotion if utt else None,
            event=utt.event if utt else None,
            lang=self.lang,
            state=self.state,
        )
        return ctx

    def _matches(
        self,
        tr: Transition,
        utt: Utterance,
        intent: str | None,
        decisions: Sequence[DecisionLike],
        at: float,
        key: str,
    ) -> bool:
        if tr.once and key in self._fired_once:
            return False
        last = self._last_fired.get(key)
        if tr.cooldown_s is not None and last is not None and at - last < tr.cooldown_s:
            return False
        return any(self._cond(c, utt, intent, decisions) for c in tr.conditions())

    def _cond(
        self, c: When, utt: Utterance, intent: str | None, decisions: Sequence[DecisionLike]
    ) -> bool:
        if c.speaker != "any" and utt.speaker != c.speaker:
            return False
        if not (
            _one_of(intent, c.intent)
            and _one_of(utt.emotion, c.emotion)
            and _one_of(utt.event, c.event)
        ):
            return False
        if any(self.slots.get(k) != v for k, v in c.slots.items()):
            return False
        if c.decision is not None:
            m = c.decision
            return any(
                (m.action is None or d.action == m.action)
                and (m.rule is None or d.rule == m.rule)
                and all(d.params.get(k) == v for k, v in m.params.items())
                for d in decisions
            )
        return True

    def _fire(
        self, tr: Transition, key: str, reason: str, ctx: dict[str, Any], at: float
    ) -> list[Reply]:
        self._fired_once.add(key)
        self._last_fired[key] = at
        for slot, value in tr.set.items():
            if isinstance(value, str) and value.startswith("$"):
                value = ctx.get(value[1:])
            self.slots[slot] = value
        ctx = {**ctx, **self.slots}
        out = [self._say(t, ctx, reason, at) for t in tr.say]
        if tr.goto is not None:
            self.state = tr.goto
        if tr.end:
            self.ended = True
        return out

    def _say(self, template: str, ctx: Mapping[str, Any], reason: str, at: float) -> Reply:
        text, lang = self.dm.render(template, self.lang, ctx)
        return Reply(text=text, lang=lang, reason=reason, at=at, template=template)


_SPOKEN = frozenset({"zh", "en", "yue", "ja", "ko"})
