"""``callsense bench accuracy``: reference parsing, CER arithmetic, and the whole command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callsense.connectors.accuracy import (
    cer_counts,
    edit_distance,
    load_references,
    normalize_text,
)
from callsense.connectors.cli_bench import _inputs
from callsense.core.errors import ConfigError, InputError
from tests.conftest import TESTDATA, manifest_rows

ANGRY = "ravdess_03-01-05-01-01-01-01.wav"  # "Kids are talking by the door."
ZH = "firered_IT0011W0001.wav"  # 换一首歌
TRUMPET = "librosa_sorohanro_-_solo-trumpet-06.ogg"  # nospeech / EMO_UNKNOWN / BGM


def test_edit_distance_by_hand() -> None:
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3
    assert edit_distance("abc", "") == 3
    assert edit_distance("换一首歌", "换首歌") == 1
    assert edit_distance("flaw", "lawn") == 2


def test_normalize_drops_case_punctuation_and_spaces() -> None:
    assert normalize_text("Kids are talking by the door.") == "kidsaretalkingbythedoor"
    assert normalize_text("开放时间早上9点至下午5点。") == "开放时间早上9点至下午5点"
    assert normalize_text("「やっぱり」、ああ") == "やっぱりああ"
    # full-width letters fold to ASCII (NFKC) before comparing
    assert cer_counts("ＹＥＳ!", "yes") == (0, 3)


def test_manifest_tsv_reads_as_references() -> None:
    refs = {r.file: r for r in load_references(TESTDATA / "MANIFEST.tsv")}
    rows = manifest_rows()
    assert set(refs) == {r["file"] for r in rows}
    assert refs[ANGRY].text == "Kids are talking by the door."
    assert refs[ANGRY].emotion == frozenset({"ANGRY"})
    assert refs[ZH].emotion is None  # empty cell: not labelled
    assert refs[TRUMPET].lang == frozenset({"nospeech"})
    laugh = refs["justforlaughs_example_audio.wav"]
    assert laugh.event == frozenset({"Speech", "Laughter"})  # the note in () is ignored
    assert laugh.text is None  # "(short English phrase, …)" is not a transcript
    assert refs["sherpa-audiotag_12_dog-bark.wav"].event == frozenset({"Event_UNK"})


def test_headerless_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "refs.tsv"
    tsv.write_text("a.wav\tHello there\ten\tHAPPY\tSpeech\nb.wav\t\tzh\n", encoding="utf-8")
    a, b = load_references(tsv)
    assert (a.file, a.text, a.emotion) == ("a.wav", "Hello there", frozenset({"HAPPY"}))
    assert (b.text, b.lang, b.event) == (None, frozenset({"zh"}), None)
    jsonl = tmp_path / "refs.jsonl"
    jsonl.write_text(
        '{"file": "a.wav", "text": "hi", "event": ["Speech", "Laughter"]}\n', encoding="utf-8"
    )
    (row,) = load_references(jsonl)
    assert row.event == frozenset({"Speech", "Laughter"})


def test_bad_references_name_file_line_and_field(tmp_path: Path) -> None:
    jsonl = tmp_path / "refs.jsonl"
    jsonl.write_text('{"file": "a.wav"}\n{"file": "b.wav", "mood": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_references(jsonl)
    assert str(err.value).startswith(f"{jsonl}:2: mood: unknown key")
    tsv = tmp_path / "refs.tsv"
    tsv.write_text("file\temotion\na.wav\tANGRY\nb.wav\tFURIOUS\n", encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(f"{tsv}:3: emotion: 'FURIOUS' is not")):
        load_references(tsv)


def test_a_reference_file_as_argument_lists_its_calls(tmp_path: Path) -> None:
    refs, files, base = _inputs([TESTDATA / "MANIFEST.tsv"], None)
    assert set(refs) == {f.name for f in files}
    assert base == TESTDATA
    assert [f.name for f in files] == [r["file"] for r in manifest_rows()]
    assert all(f.is_file() for f in files)
    missing = tmp_path / "refs.tsv"
    missing.write_text("file\ttext\nnot-there.wav\thi\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"not-there\.wav: listed in the references"):
        _inputs([missing], None)


@pytest.mark.model
@pytest.mark.slow
def test_accuracy_fixed_model_torch_vs_its_onnx_export(
    fixed_model_dir: Path, fast_config: Path, tmp_path: Path
) -> None:
    from callsense.connectors.cli import app

    out = tmp_path / "report.json"
    args = ["bench", "accuracy", str(TESTDATA / ANGRY), str(TESTDATA / ZH), str(TESTDATA / TRUMPET)]
    args += ["--reference", str(TESTDATA / "MANIFEST.tsv"), "--fast-config", str(fast_config)]
    args += ["--model", str(fixed_model_dir), "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "callsense bench accuracy" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["backends"]["fp32"]["backend"] == "SenseVoiceRecognizer"
    assert report["backends"]["fast"]["backend"] == "SenseVoiceOnnxRecognizer"
    files = {Path(f["file"]).name: f for f in report["per_file"]}
    # one VAD segment per clip, so each backend's file text is the model's one "Yes."
    assert [files[n]["segments"] for n in (ANGRY, ZH, TRUMPET)] == [1, 1, 1]
    for name in ("fp32", "fast"):
        # "yes" vs "kidsaretalkingbythedoor" (23 chars): "y" and "e" align (by, the), the
        # rest is 1 substitution + 20 deletions -> 21 edits; "yes" vs 换一首歌: 4 edits
        assert files[ANGRY][name]["cer"] == pytest.approx(21 / 23)
        assert files[ZH][name]["cer"] == pytest.approx(4 / 4)
        score = report["scores"][name]
        assert (score["edits"], score["ref_chars"]) == (25, 27)
        assert score["cer"] == pytest.approx(25 / 27)
        # the model always says en / ANGRY / Speech: right on the angry clip only (lang),
        # on the angry clip (emotion; the zh clip has no emotion label), on both speech clips
        assert score["lang_accuracy"] == pytest.approx(1 / 3)
        assert (score["emotion_accuracy"], score["emotion_labelled"]) == (1.0 / 2, 2)
        assert score["event_accuracy"] == pytest.approx(2 / 3)
    agreement = report["agreement"]
    assert agreement["segments"] == 3
    assert [agreement[k] for k in ("lang", "emotion", "event", "text_exact")] == [1.0] * 4
    assert agreement["cer_vs_fp32"] == 0.0
