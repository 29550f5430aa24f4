"""A misconfigured intents file or hook fails at start-up with file:line, not mid-call."""

from __future__ import annotations

from pathlib import Path

import pytest

from callsense.core.errors import ConfigError
from callsense.pipeline.nlu import IntentClassifier

GOOD_INTENT = """\
intents:
  refund:
    keywords: {en: [refund]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intents.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        IntentClassifier.load(_write(tmp_path, text))
    return info.value


def test_bad_regex_names_file_line_and_field(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        GOOD_INTENT
        + "    patterns:\n      en:\n        - 'fine'\n        - 'broken(('\n"
        + "hooks:\n  - {name: keywords, type: keywords}\n",
    )
    assert str(err).startswith(f"{tmp_path / 'intents.yaml'}:7: intents.refund.patterns.en[1]: ")
    assert "not a valid regular expression" in str(err)


def test_unknown_field_and_hook_type(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD_INTENT + "hooks:\n  - {name: k, type: keywords, confidance: 0.5}\n")
    # (the path also names the hook type: core.yamlsource keeps pydantic's union tag)
    assert ":5: hooks[0]." in str(err) and "confidance: unknown field" in str(err)
    err = _error(tmp_path, GOOD_INTENT + "hooks:\n  - name: k\n    type: luis\n")
    assert ":5: hooks[0]" in str(err) and "luis" in str(err)


def test_duplicate_hook_names_and_unknown_mapped_intent(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        GOOD_INTENT
        + "hooks:\n"
        + "  - {name: a, type: keywords}\n"
        + "  - {name: a, type: keywords}\n"
        + "  - name: r\n    type: rasa\n    url: http://127.0.0.1:5005\n"
        + "    intent_map: {request_human: speak_to_human}\n",
    )
    assert len(err.problems) == 2
    assert ":6: hooks[1].name: 'a' is already used" in err.problems[0]
    assert (
        ":10: hooks[2].intent_map.request_human: 'speak_to_human' is not an intent"
        in err.problems[1]
    )


def test_all_hooks_disabled(tmp_path: Path) -> None:
    err = _error(tmp_path, GOOD_INTENT + "hooks:\n  - {name: k, type: keywords, enabled: false}\n")
    assert ":4: hooks: every hook is disabled" in str(err)


def test_hook_that_cannot_start_is_a_config_error(tmp_path: Path) -> None:
    err = _error(
        tmp_path,
        GOOD_INTENT
        + "hooks:\n  - {name: k, type: keywords}\n"
        + "  - name: emb\n    type: embedding\n    model: no-such-model-package\n",
    )
    assert ":6: hooks[1]: hook 'emb' cannot start" in str(err)
    assert "no-such-model-package" in str(err)


def test_empty_intent_and_bad_language_code(tmp_path: Path) -> None:
    err = _error(tmp_path, "intents:\n  x: {}\nhooks:\n  - {name: k, type: keywords}\n")
    assert ":2: intents.x: " in str(err)
    err = _error(
        tmp_path,
        "intents:\n  x:\n    keywords: {English: [a]}\nhooks:\n  - {name: k, type: keywords}\n",
    )
    assert ":3: intents.x.keywords" in str(err)
