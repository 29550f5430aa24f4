"""The policy language as pydantic models: what a policy YAML file may say.

Models forbid unknown fields; tags are checked against SenseVoice's vocabulary with a
"did you mean" hint; durations are strings with a unit (``30s``, ``2m``, ``1.5s``, ``500ms``).
``Policy.model_json_schema()`` is what ``callsense policy schema`` prints for editors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)

from callsense.core.vocab import EMOTIONS, EVENTS, LANGUAGES, SOURCES, SPEAKERS, suggest

__all__ = [
    "ACTION_NAMES",
    "Action",
    "Condition",
    "Escalate",
    "Interruptions",
    "Mark",
    "MinConfidence",
    "Overtalk",
    "Policy",
    "Reply",
    "Route",
    "Rule",
    "TagAction",
    "TemperatureAbove",
    "TextMatch",
    "Webhook",
    "When",
    "parse_duration",
    "tag_check",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """``"30s"`` -> 30.0, ``"2m"`` -> 120.0; a bare number is refused (which unit?)."""
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("write a duration as a string with a unit, like 30s, 2m, 1.5s or 500ms")
    match = _DURATION.match(value)
    if match is None:
        raise ValueError("not a duration; write it like 30s, 2m, 1.5s or 500ms")
    seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError("duration is too long")
    if seconds <= 0:
        raise ValueError("a duration must be longer than 0s")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h)$"}),
]


def tag_check(name: str, vocabulary: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"a {name} is a string (got {value!r})")
        if value in vocabulary:
            return value
        hint = suggest(value, vocabulary)
        extra = f"; did you mean {hint}?" if hint else f"; one of {', '.join(vocabulary)}"
        raise ValueError(f"unknown {name} {value!r}{extra}")

    return check


def _tag(name: str, vocabulary: tuple[str, ...]) -> Any:
    """One tag or a list of tags, stored as a tuple; one clear error for a bad entry."""
    check = tag_check(name, vocabulary)

    def normalize(value: Any) -> tuple[str, ...]:
        if isinstance(value, list):
            if not value:
                raise ValueError(f"give at least one {name}")
            return tuple(check(v) for v in value)
        return (check(value),)

    one = {"enum": list(vocabulary)}
    return Annotated[
        tuple[str, ...],
        BeforeValidator(normalize),
        WithJsonSchema({"anyOf": [one, {"type": "array", "items": one, "minItems": 1}]}),
    ]


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise ValueError("give a name or a list of names")


NameSel = Annotated[
    tuple[str, ...],
    BeforeValidator(_names),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]
SpeakerSel = _tag("speaker", SPEAKERS)
EmotionSel = _tag("emotion", EMOTIONS)
EventSel = _tag("event", EVENTS)
LanguageSel = _tag("language", LANGUAGES)
SourceName = Annotated[
    str, AfterValidator(tag_check("source", SOURCES)), WithJsonSchema({"enum": list(SOURCES)})
]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class TextMatch(_Strict):
    """Text test: any keyword as a case-insensitive substring, or a case-insensitive regex."""

    keywords: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = (
        None
    )
    regex: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> TextMatch:
        if (self.keywords is None) == (self.regex is None):
            raise ValueError("give exactly one of keywords or regex")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        return self


class ConfidenceAtLeast(_Strict):
    """Tag probabilities that must be reached (each ``>=``)."""

    lang: Probability | None = None
    emotion: Probability | None = None
    event: Probability | None = None


class Overtalk(_Strict):
    """Both sides speaking at once for more than ``longer_than`` in total, within the last
    ``within`` of the call (``docs/dynamics.md``: overtalk)."""

    longer_than: Duration
    within: Duration

    @model_validator(mode="after")
    def _fits(self) -> Overtalk:
        if self.longer_than >= self.within:
            raise ValueError("longer_than must be shorter than within, or it can never hold")
        return self


class Interruptions(_Strict):
    """More than ``more_than`` interruptions by these speakers (default: anyone) started
    within the last ``within`` of the call (``docs/dynamics.md``: interruptions)."""

    by: SpeakerSel | None = None
    more_than: Annotated[int, Field(ge=0)]
    within: Duration


class TemperatureAbove(_Strict):
    """The customer's temperature (-1 pleased .. +1 heated) is above ``above`` now, or with
    ``for``, has been for longer than that without a break (``docs/dynamics.md``)."""

    above: Annotated[float, Field(ge=-1.0, lt=1.0)]
    for_: Annotated[Duration | None, Field(alias="for")] = None


class MinConfidence(_Strict):
    """Below these probabilities a tag counts as "cannot tell" (an abstention)."""

    lang: Probability | None = None
    emotion: Probability | None = None
    event: Probability | None = None


class Condition(_Strict):
    """Tests on one utterance; several keys in one mapping must all hold."""

    speaker: SpeakerSel | None = None
    source: SourceName | None = None
    emotion: EmotionSel | None = None
    event: EventSel | None = None
    language: LanguageSel | None = None
    confidence: ConfidenceAtLeast | None = None
    text: TextMatch | None = None
    intent: NameSel | None = None
    silence: Annotated[
        Duration | None,
        Field(description="gap since the previous visible utterance ended is longer than this"),
    ] = None
    hold: Annotated[
        Duration | None,
        Field(description="skipped audio (hold music) right before this utterance is longer"),
    ] = None
    overtalk: Annotated[
        Overtalk | None,
        Field(description="both sides speaking at once, in total, within a recent window"),
    ] = None
    interruptions: Annotated[
        Interruptions | None,
        Field(description="interruptions by a speaker within a recent window"),
    ] = None
    temperature: Annotated[
        TemperatureAbove | None,
        Field(description="the customer's temperature above a value (for a while)"),
    ] = None
    all_: Annotated[list[Condition] | None, Field(alias="all", min_length=1)] = None
    any_: Annotated[list[Condition] | None, Field(alias="any", min_length=1)] = None
    not_: Annotated[Condition | None, Field(alias="not")] = None


class When(Condition):
    """A rule's condition plus how matching utterances are counted and over which call time."""

    consecutive: Annotated[int, Field(ge=1)] | None = None
    at_least: Annotated[int, Field(ge=1)] | None = None
    of_last: Annotated[int, Field(ge=1)] | None = None
    within: Duration | None = None
    first: Duration | None = None
    last: Duration | None = None

    @model_validator(mode="after")
    def _counting(self) -> When:
        if self.consecutive is not None and self.at_least is not None:
            raise ValueError("use either consecutive or at_least, not both")
        if self.of_last is not None:
            if self.at_least is None:
                raise ValueError("of_last needs at_least (at_least: M of_last: N)")
            if self.of_last < self.at_least:
                raise ValueError(
                    f"at_least ({self.at_least}) cannot exceed of_last ({self.of_last})"
                )
        if self.within is not None and self.consecutive is None and self.at_least is None:
            raise ValueError("within needs a counter: consecutive: N or at_least: M")
        if self.first is not None and self.last is not None:
            raise ValueError("use either first or last, not both")
        return self


class FollowUp(_Strict):
    """An SLA: if the call is not marked resolved within ``after``, escalate again."""

    after: Duration
    priority: Literal["low", "normal", "high", "urgent"] = "urgent"


class EscalateParams(_Strict):
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    reason: str = ""
    follow_up: FollowUp | None = None


class CustomMark(_Strict):
    custom: Annotated[str, Field(min_length=1)]


class RouteParams(_Strict):
    queue: Annotated[str, Field(min_length=1)]
    target: Annotated[
        str | None,
        Field(
            min_length=1,
            description="a routing target from the config (default: routing_default, or the "
            "only target)",
        ),
    ] = None


class WebhookParams(_Strict):
    endpoint: Annotated[str, Field(min_length=1, description="a named endpoint from the config")]


class ReplyParams(_Strict):
    template: Annotated[str, Field(min_length=1, description="a dialogue template name")]


class Escalate(_Strict):
    escalate: EscalateParams

    def decision(self) -> tuple[str, dict[str, Any]]:
        return "escalate", self.escalate.model_dump(exclude_none=True)


class Mark(_Strict):
    mark: Literal["satisfaction", "dissatisfaction"] | CustomMark

    def decision(self) -> tuple[str, dict[str, Any]]:
        if isinstance(self.mark, CustomMark):
            return "mark", {"kind": "custom", "label": self.mark.custom}
        return "mark", {"kind": self.mark}


class TagAction(_Strict):
    tag: Annotated[str, Field(min_length=1)]

    def decision(self) -> tuple[str, dict[str, Any]]:
        return "tag", {"tag": self.tag}


class Route(_Strict):
    route: RouteParams

    def decision(self) -> tuple[str, dict[str, Any]]:
        return "route", self.route.model_dump(exclude_none=True)


class Webhook(_Strict):
    webhook: WebhookParams

    def decision(self) -> tuple[str, dict[str, Any]]:
        return "webhook", self.webhook.model_dump()


class Reply(_Strict):
    reply: ReplyParams

    def decision(self) -> tuple[str, dict[str, Any]]:
        return "reply", self.reply.model_dump()


ACTION_NAMES = ("escalate", "mark", "tag", "route", "webhook", "reply")


def _action_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in value if k in ACTION_NAMES]
        return keys[0] if len(keys) == 1 else None
    for name in ACTION_NAMES:
        if hasattr(value, name):
            return name
    return None


Action = Annotated[
    Annotated[Escalate, Tag("escalate")]
    | Annotated[Mark, Tag("mark")]
    | Annotated[TagAction, Tag("tag")]
    | Annotated[Route, Tag("route")]
    | Annotated[Webhook, Tag("webhook")]
    | Annotated[Reply, Tag("reply")],
    Discriminator(
        _action_kind,
        custom_error_type="unknown_action",
        custom_error_message=(
            "an action is a one-key mapping: escalate, mark, tag, route, webhook or reply"
        ),
    ),
]


class Rule(_Strict):
    """One rule: when the counted condition completes, take the actions."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    when: When
    then: Annotated[list[Action], Field(min_length=1)]
    once: bool = False
    cooldown: Duration | None = None
    on_unknown: Literal["ignore", "break"] = "ignore"


class Policy(_Strict):
    """One policy file."""

    policy: Annotated[str, Field(min_length=1, description="the policy's name in decisions")]
    description: str = ""
    min_confidence: MinConfidence = MinConfidence()
    on_pause: Literal["reset", "continue"] = Field(
        "reset",
        description="a gap the platform marks in a live call (a hold or secure pause, audio "
        "it discarded, a reconnect): reset = no streak or window of this policy runs across "
        "it; continue = the gap is ignored, as if the call had not stopped",
    )
    skip: list[Condition] = []
    rules: list[Rule] = []
