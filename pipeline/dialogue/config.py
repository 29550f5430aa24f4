"""The schema of ``configs/dialogue.yaml``: flows, behaviours and reply templates.

Pydantic checks each field; ``check_references`` then checks what pydantic cannot see
(a ``goto`` to a state that does not exist, a template without a required language, a
``{variable}`` nobody defines) and names the file and line of each, so a broken flow
fails when it is loaded, never in the middle of a call.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from callsense.core.vocab import EMOTIONS, EVENTS, suggest
from callsense.core.yamlsource import Located, format_loc

__all__ = [
    "BUILTIN_VARIABLES",
    "DECISION_ACTIONS",
    "Behaviours",
    "DecisionMatch",
    "DialogueConfig",
    "Disclosure",
    "StartConfig",
    "StateSpec",
    "Transition",
    "When",
    "check_references",
    "template_fields",
]

DECISION_ACTIONS = ("escalate", "mark", "route", "tag", "reply", "webhook")
# Always available in templates and ``set`` values ($intent etc.), filled per utterance.
BUILTIN_VARIABLES = ("call_id", "intent", "emotion", "event", "lang", "state")
_NAME = r"^[a-z][a-z0-9_]*$"
Scalar = str | int | float | bool | None
LangCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]


def _vocab_check(vocabulary: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        if value not in vocabulary:
            hint = suggest(value, vocabulary)
            extra = f"; did you mean {hint!r}?" if hint else f" (one of {', '.join(vocabulary)})"
            raise ValueError(f"unknown {what} {value!r}{extra}")
        return value

    return AfterValidator(check)


Emotion = Annotated[str, _vocab_check(EMOTIONS, "emotion")]
Event = Annotated[str, _vocab_check(EVENTS, "event")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DecisionMatch(_Strict):
    """Matches a policy decision; ``params`` must be a subset of the decision's params."""

    action: Literal["escalate", "mark", "route", "tag", "reply", "webhook"] | None = None
    rule: str | None = None
    params: dict[str, Scalar] = Field(default_factory=dict)


class When(_Strict):
    """All given conditions must hold; a list value means any of its items.

    ``speaker`` defaults to the customer; ``any`` also accepts agent and unknown.
    """

    speaker: Literal["customer", "agent", "unknown", "any"] = "customer"
    intent: list[str] | None = None
    emotion: list[Emotion] | None = None
    event: list[Event] | None = None
    decision: DecisionMatch | None = None
    slots: dict[str, Scalar] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _one_is_a_list(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {
                k: [v] if k in ("intent", "emotion", "event") and isinstance(v, str) else v
                for k, v in data.items()
            }
        return data


class Transition(_Strict):
    """When ``when`` matches: say ``say`` (template names), ``set`` slots, ``goto`` a state.

    ``end`` stops the bot for this call (a human took over). ``once`` fires at most once
    per call; ``cooldown_s`` keeps it quiet for that many audio seconds after it fired.
    A ``set`` value starting with ``$`` copies a built-in (``$intent``, ``$emotion``...).
    """

    when: list[When] = Field(min_length=1)
    say: list[str] = Field(default_factory=list)
    set: dict[str, Scalar] = Field(default_factory=dict)
    goto: str | None = None
    end: bool = False
    once: bool = False
    cooldown_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_is_a_list(cls, data: Any) -> Any:
        """``say: x`` means ``say: [x]``; ``when: {...}`` means ``when: [{...}]`` (any of)."""
        if isinstance(data, dict):
            if isinstance(data.get("say"), str):
                data = {**data, "say": [data["say"]]}
            if isinstance(data.get("when"), (dict, When)):
                data = {**data, "when": [data["when"]]}
        return data

    def conditions(self) -> list[When]:
        return self.when


def _default_handoff() -> Transition:
    return Transition(
        when=[When(speaker="any", decision=DecisionMatch(action="escalate"))],
        say=["handoff"],
        end=True,
    )


def _default_deescalate() -> Transition:
    return Transition(when=[When(emotion=["ANGRY"])], say=["deescalate"], cooldown_s=30.0)


def _default_closing() -> Transition:
    return Transition(
        when=[
            When(event=["Laughter"]),
            When(
                speaker="any",
                decision=DecisionMatch(action="mark", params={"kind": "satisfaction"}),
            ),
        ],
        say=["closing"],
        once=True,
    )


class Behaviours(_Strict):
    """Built in, on unless set to null: tried in this order before the state's own rules."""

    handoff: Transition | None = Field(default_factory=_default_handoff)
    deescalate: Transition | None = Field(default_factory=_default_deescalate)
    closing: Transition | None = Field(default_factory=_default_closing)


class StateSpec(_Strict):
    transitions: list[Transition] = Field(default_factory=list)
    final: bool = False


class StartConfig(_Strict):
    state: str
    say: list[str] = Field(default_factory=lambda: ["greeting"])


class Disclosure(_Strict):
    """The line telling callers that emotion recognition runs (EU AI Act Art. 50(3))."""

    enabled: bool = True
    template: str = "disclosure"


class DialogueConfig(_Strict):
    version: Literal[1] = 1
    default_lang: LangCode = "en"
    languages: list[LangCode] = Field(default_factory=lambda: ["en", "zh"], min_length=1)
    lang_fallbacks: dict[LangCode, LangCode] = Field(default_factory=lambda: {"yue": "zh"})
    variables: dict[Annotated[str, Field(pattern=_NAME)], str] = Field(default_factory=dict)
    slots: dict[Annotated[str, Field(pattern=_NAME)], Scalar] = Field(default_factory=dict)
    start: StartConfig
    disclosure: Disclosure = Field(default_factory=Disclosure)
    behaviours: Behaviours = Field(default_factory=Behaviours)
    global_: list[Transition] = Field(default_factory=list, alias="global")
    states: dict[Annotated[str, Field(pattern=_NAME)], StateSpec] = Field(min_length=1)
    templates: dict[Annotated[str, Field(pattern=_NAME)], dict[LangCode, str | list[str]]]


def template_fields(text: str) -> list[str]:
    """Variable names in a ``{name}`` template; ``ValueError`` for anything fancier."""
    names = []
    for _, name, spec, conv in string.Formatter().parse(text):
        if name is None:
            continue
        if not name or not name.isidentifier() or spec or conv:
            raise ValueError(
                f"{{{name}{'!' + conv if conv else ''}{':' + spec if spec else ''}}} is not a "
                "plain {variable}; write {{ and }} for literal braces"
            )
        names.append(name)
    return names


def _where(src: Located, loc: tuple[str | int, ...]) -> str:
    line = src.line_of(loc)
    return f"{src.file}:{line}" if line else src.file


def _raw(src: Located, loc: tuple[str | int, ...]) -> Any:
    node = src.data
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def check_references(
    cfg: DialogueConfig, src: Located, *, intents: Iterable[str] | None = None
) -> list[str]:
    """Every cross-reference problem as ``file:line: field: message`` (empty: all good)."""
    problems: list[str] = []

    def bad(loc: tuple[str | int, ...], msg: str) -> None:
        problems.append(f"{_where(src, loc)}: {format_loc(loc)}: {msg}")

    known_vars = set(cfg.variables) | set(cfg.slots) | set(BUILTIN_VARIABLES)
    known_intents = set(intents) if intents is not None else None
    langs = set(cfg.languages)
    if cfg.default_lang not in langs:
        bad(("default_lang",), f"{cfg.default_lang!r} is not in languages {sorted(langs)}")
    for lang, target in cfg.lang_fallbacks.items():
        if target not in langs:
            bad(("lang_fallbacks", lang), f"falls back to {target!r}, which is not in languages")

    for name, by_lang in cfg.templates.items():
        missing = sorted(langs - set(by_lang))
        if missing:
            bad(("templates", name), f"missing language(s) {', '.join(missing)}")
        for lang, texts in by_lang.items():
            items = texts if isinstance(texts, list) else [texts]
            if not items:
                bad(("templates", name, lang), "needs at least one text")
            for i, text in enumerate(items):
                loc: tuple[str | int, ...] = ("templates", name, lang)
                if isinstance(texts, list):
                    loc = (*loc, i)
                try:
                    fields = template_fields(text)
                except ValueError as exc:
                    bad(loc, str(exc))
                    continue
                for f in fields:
                    if f not in known_vars:
                        hint = suggest(f, tuple(sorted(known_vars)))
                        bad(
                            loc,
                            f"unknown variable {{{f}}}"
                            + (f"; did you mean {{{hint}}}?" if hint else "")
                            + " (declare it under variables: or slots:)",
                        )

    def check_say(loc: tuple[str | int, ...], names: list[str]) -> None:
        for i, t in enumerate(names):
            if t not in cfg.templates:
                hint = suggest(t, tuple(cfg.templates))
                bad(
                    (*loc, i),
                    f"no template named {t!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                )

    def check_transition(loc: tuple[str | int, ...], tr: Transition) -> None:
        check_say((*loc, "say"), tr.say)
        if tr.goto is not None and tr.goto not in cfg.states:
            hint = suggest(tr.goto, tuple(cfg.states))
            bad(
                (*loc, "goto"),
                f"no state named {tr.goto!r}" + (f"; did you mean {hint!r}?" if hint else ""),
            )
        for slot, value in tr.set.items():
            if slot not in cfg.slots:
                bad((*loc, "set", slot), f"{slot!r} is not declared under slots:")
            if (
                isinstance(value, str)
                and value.startswith("$")
                and value[1:] not in BUILTIN_VARIABLES
            ):
                bad(
                    (*loc, "set", slot), f"{value!r}: $ names one of {', '.join(BUILTIN_VARIABLES)}"
                )
        conds = tr.conditions()
        for j, cond in enumerate(conds):
            cloc = (
                (*loc, "when", j) if isinstance(_raw(src, (*loc, "when")), list) else (*loc, "when")
            )
            for slot in cond.slots:
                if slot not in cfg.slots:
                    bad((*cloc, "slots", slot), f"{slot!r} is not declared under slots:")
            if known_intents is not None and cond.intent is not None:
                for w in cond.intent:
                    if w not in known_intents:
                        hint = suggest(w, tuple(sorted(known_intents)))
                        bad(
                            (*cloc, "intent"),
                            f"unknown intent {w!r}" + (f"; did you mean {hint!r}?" if hint else ""),
                        )

    if cfg.start.state not in cfg.states:
        bad(("start", "state"), f"no state named {cfg.start.state!r}")
    check_say(("start", "say"), cfg.start.say)
    if cfg.disclosure.enabled and cfg.disclosure.template not in cfg.templates:
        bad(("disclosure", "template"), f"no template named {cfg.disclosure.template!r}")
    for bname in ("handoff", "deescalate", "closing"):
        tr = getattr(cfg.behaviours, bname)
        if tr is not None:
            check_transition(("behaviours", bname), tr)
    for i, tr in enumerate(cfg.global_):
        check_transition(("global", i), tr)
    for sname, state in cfg.states.items():
        if state.final and state.transitions:
            bad(("states", sname, "transitions"), "a final state has no transitions")
        for i, tr in enumerate(state.transitions):
            check_transition(("states", sname, "transitions", i), tr)
    return problems
