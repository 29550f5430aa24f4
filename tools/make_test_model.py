"""Build a tiny SenseVoiceSmall model directory that funasr loads exactly like the real one.

No SenseVoice weights can be downloaded where callsense is developed and tested, so tests
(and users trying the CLI) need a model that goes through the real ``funasr.AutoModel``
path and still says something predictable. This builds funasr's own ``SenseVoiceSmall``
class at a tiny size, next to the real tokenizer, config and CMVN files, and edits its
weights (no training) following ../shared/sensevoice/RECIPE.md:

* fixed:  every input gives the same tags and text, e.g.
  ``<|en|><|ANGRY|><|Speech|><|withitn|>Yes.``
* keyed:  a ridge-regression classifier, fit in closed form on a few labelled clips and
  pooled over the whole input, picks one class per clip; the class decides the emotion
  and event tags. Language, itn and text stay fixed.

Usage::

    python tools/make_test_model.py OUT_DIR [--lang en --emotion ANGRY --event Speech --text Yes.]
    python tools/make_test_model.py OUT_DIR --keyed SPEC.json
    python tools/make_test_model.py OUT_DIR --call-model   # the keyed model of the tests

A keyed SPEC is a JSON list of classes::

    [{"emotion": "ANGRY", "event": "Speech", "clips": ["a1.wav", "a2.wav"]},
     {"emotion": "EMO_UNKNOWN", "event": "BGM",
      "clips": [{"path": "music.ogg", "start": 3, "duration": 3}]}]

Audio is decoded by ffmpeg to 16 kHz mono. The model only learns what separates the
training clips (speaker, channel, music vs noise); inputs unlike every class get some
class's tags, so add an explicit "no key" class (noise and silence -> EMO_UNKNOWN,
Event_UNK) when a test needs one.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callsense.pipeline.quiet import import_funasr
from tools import shared_assets
from tools.model_surgery import (
    ALPHA,
    LANG_ROWS,
    KeyedClass,
    fit_ridge,
    fixed_surgery,
    key_surgery,
    tag_id,
)
from tools.test_clips import (
    CALL_MODEL_CLASSES,
    SAMPLE_RATE,
    TESTDATA,
    decode_audio,
    load_clip,
    telephone,
    white_noise,
)

__all__ = [
    "DEFAULT_SOURCE",
    "DEFAULT_VAD_SOURCE",
    "KeyedClass",
    "build_call_model",
    "build_fixed_model",
    "build_keyed_model",
    "main",
]

DEFAULT_SOURCE = shared_assets.sensevoice_files()
DEFAULT_VAD_SOURCE = shared_assets.fsmn_vad_dir()
VAD_FILES = ("config.yaml", "configuration.json", "am.mvn", "model.pt")
COPIED_FILES = ("am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model", "configuration.json")

_FIXED_SIZE = {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2}


def build_fixed_model(
    out_dir: str | Path,
    *,
    lang: str = "en",
    emotion: str = "ANGRY",
    event: str = "Speech",
    text: str = "Yes.",
    source: str | Path = DEFAULT_SOURCE,
    vad_source: str | Path | None = DEFAULT_VAD_SOURCE,
) -> Path:
    """Write a model that answers ``<|lang|><|emotion|><|event|><|itn|>text`` for any input.

    ``language="auto"`` gives ``lang``; an explicit language gives its own tag. ``text``
    must be at most two tokenizer pieces (``Yes.``, ``Okay``, ``Thanks``; ``""`` for none).
    The FSMN-VAD files in ``vad_source`` (if it exists) are copied to ``OUT_DIR/vad``, which
    callsense uses as its VAD when given this model directory, so the pair works offline.
    """
    out = _prepare_dir(out_dir, source, vad_source)
    torch, model, sp = _new_model(out, source, _FIXED_SIZE)
    with torch.no_grad():
        fixed_surgery(model, sp, lang=lang, text=text)
        lo = model.ctc.ctc_lo.weight
        lo[tag_id(sp, emotion), 1] = ALPHA
        lo[tag_id(sp, event), 2] = ALPHA
        if emotion == "EMO_UNKNOWN":  # ban_emo_unk falls back to NEUTRAL, as the real model would
            lo[tag_id(sp, "NEUTRAL"), 1] = 0.9 * ALPHA
    torch.save(model.state_dict(), out / "model.pt")
    return out


def build_keyed_model(
    out_dir: str | Path,
    classes: Sequence[KeyedClass | tuple[str, str, Sequence[np.ndarray]]],
    *,
    lang: str = "en",
    text: str = "Yes.",
    ridge: float = 1.0,
    source: str | Path = DEFAULT_SOURCE,
    vad_source: str | Path | None = DEFAULT_VAD_SOURCE,
) -> Path:
    """Write a model whose emotion and event tags depend on which class a clip sounds like.

    Each class is ``(emotion, event, clips)`` with 16 kHz mono float32 clips. At most two
    classes may share one tag (the max over classes is built from one ReLU per extra class).
    ``vad_source`` as for ``build_fixed_model``.
    """
    keyed = [
        c if isinstance(c, KeyedClass) else KeyedClass(c[0], c[1], tuple(c[2])) for c in classes
    ]
    if len(keyed) < 2:
        raise ValueError("a keyed model needs at least two classes")
    for i, cls in enumerate(keyed):
        if not cls.clips:
            raise ValueError(f"class {i} ({cls.emotion}/{cls.event}) has no clips")
    k = len(keyed)
    # (frame row, token) -> classes that emit it; frame 1 = emotion, frame 2 = event
    emitters: dict[tuple[int, str], list[int]] = {}
    for i, cls in enumerate(keyed):
        emitters.setdefault((1, cls.emotion), []).append(i)
        emitters.setdefault((2, cls.event), []).append(i)
    for (_row, tag), owners in emitters.items():
        if len(owners) > 2:
            raise ValueError(
                f"tag {tag} is emitted by {len(owners)} classes; at most 2 may share one"
            )
    d = 64
    while d < 20 + 2 * k + len(emitters):
        d *= 2
    size = {"output_size": d, "attention_heads": 2, "linear_units": 2 * d, "num_blocks": 2}

    out = _prepare_dir(out_dir, source, vad_source)
    torch, model, sp = _new_model(out, source, size)
    with torch.no_grad():
        fixed_surgery(model, sp, lang=lang, text=text)
        weights, bias = fit_ridge(torch, model, out, keyed, ridge)
        key_surgery(model, sp, weights, bias, emitters)
    torch.save(model.state_dict(), out / "model.pt")
    return out


_NOISE_AMPLITUDES = (0.01, 0.1, 0.5)


def build_call_model(
    out_dir: str | Path,
    *,
    testdata: str | Path = TESTDATA,
    source: str | Path = DEFAULT_SOURCE,
    vad_source: str | Path | None = DEFAULT_VAD_SOURCE,
) -> Path:
    """Build the keyed model of callsense's tests (CALL_MODEL_CLASSES; about 10 s on 2 cores).

    A = RAVDESS actor 01 -> ANGRY/Speech, B = RAVDESS actor 02 and the asterisk prompt
    voice -> NEUTRAL/Speech, C = music -> EMO_UNKNOWN/BGM, N = noise or silence ->
    EMO_UNKNOWN/Event_UNK. The two voices are also trained through a telephone line, so
    8 kHz mu-law calls built from them keep their classes.
    """
    classes = []
    for name, (emotion, event, refs) in CALL_MODEL_CLASSES.items():
        clips = [load_clip(ref, testdata) for ref in refs]
        if name in ("A", "B"):
            clips += [telephone(c) for r, c in zip(refs, clips, strict=True) if "ravdess" in r.file]
        if name == "N":
            clips = [white_noise(a, 2.0, seed) for seed, a in enumerate(_NOISE_AMPLITUDES)]
            clips.append(np.zeros(SAMPLE_RATE, dtype=np.float32))
        classes.append(KeyedClass(emotion, event, tuple(clips)))
    return build_keyed_model(out_dir, classes, source=source, vad_source=vad_source)


def _prepare_dir(out_dir: str | Path, source: str | Path, vad_source: str | Path | None) -> Path:
    src = Path(source)
    missing = [n for n in (*COPIED_FILES, "config.yaml") if not (src / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{src}: missing SenseVoice files {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        shutil.copyfile(src / name, out / name)
    vad = Path(vad_source) if vad_source is not None else None
    if vad is not None and all((vad / n).is_file() for n in VAD_FILES):
        (out / "vad").mkdir(exist_ok=True)
        for name in VAD_FILES:
            shutil.copyfile(vad / name, out / "vad" / name)
    return out


def _shrunk_config(text: str, size: dict[str, int]) -> str:
    """The real config.yaml with a tiny encoder and no dither (repeatable features)."""
    for key, value in {**size, "tp_blocks": 1}.items():
        text, n = re.subn(rf"(\n    {key}:) \d+", rf"\1 {value}", text)
        if n != 1:
            raise ValueError(f"config.yaml: expected one encoder_conf.{key}, found {n}")
    text, n = re.subn(r"(\nfrontend_conf:\n)", r"\1    dither: 0.0\n", text)
    if n != 1:
        raise ValueError("config.yaml: expected one frontend_conf section")
    return text


def _new_model(out: Path, source: str | Path, size: dict[str, int]) -> tuple[Any, Any, Any]:
    import_funasr()
    import sentencepiece as spm
    import torch
    import yaml
    from funasr.models.sense_voice.model import SenseVoiceSmall

    text = _shrunk_config((Path(source) / "config.yaml").read_text(encoding="utf-8"), size)
    (out / "config.yaml").write_text(text, encoding="utf-8")
    cfg = yaml.safe_load(text)
    torch.manual_seed(0)  # the weights we do not set are random; keep builds identical
    sp = spm.SentencePieceProcessor(model_file=str(out / COPIED_FILES[1]))
    model = SenseVoiceSmall(
        encoder=cfg["encoder"],
        encoder_conf=cfg["encoder_conf"],
        input_size=80 * cfg["frontend_conf"]["lfr_m"],
        vocab_size=sp.get_piece_size(),
        **{k: v for k, v in cfg["model_conf"].items() if k != "length_normalized_loss"},
    )
    model.eval()
    return torch, model, sp


def _load_spec(path: Path) -> list[KeyedClass]:
    """Read a keyed SPEC (JSON) and decode its clips; errors name the entry."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read keyed spec: {exc}") from exc
    if not isinstance(spec, list):
        raise ValueError(f"{path}: a keyed spec is a JSON list of classes")
    classes = []
    for i, entry in enumerate(spec):
        if not isinstance(entry, dict) or set(entry) != {"emotion", "event", "clips"}:
            raise ValueError(f"{path}: [{i}]: needs exactly emotion, event and clips")
        clips = []
        for j, clip in enumerate(entry["clips"] if isinstance(entry["clips"], list) else [None]):
            ref = {"path": clip} if isinstance(clip, str) else clip
            if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
                raise ValueError(f"{path}: [{i}].clips[{j}]: a path or {{path, start, duration}}")
            where = Path(ref["path"])
            if not where.is_absolute():
                where = path.parent / where
            clips.append(decode_audio(where, start=ref.get("start"), duration=ref.get("duration")))
        classes.append(KeyedClass(str(entry["emotion"]), str(entry["event"]), tuple(clips)))
    return classes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_test_model.py",
        description=(
            "Build a tiny SenseVoiceSmall model directory (funasr's real class, real tokenizer, "
            "config and CMVN) whose weights are edited to emit chosen tags and text for any "
            "input, or (--keyed) tags chosen by which training class a clip sounds like. "
            "Load it with `callsense transcribe --model OUT_DIR`."
        ),
    )
    parser.add_argument("out_dir", type=Path, help="directory to write (created if missing)")
    parser.add_argument(
        "--lang", default="en", choices=sorted(LANG_ROWS), help="tag for language=auto"
    )
    parser.add_argument(
        "--emotion", default="ANGRY", help="emotion tag, e.g. ANGRY, NEUTRAL, HAPPY"
    )
    parser.add_argument("--event", default="Speech", help="event tag, e.g. Speech, BGM, Laughter")
    parser.add_argument(
        "--text", default="Yes.", help="text after the tags (at most 2 tokenizer pieces)"
    )
    parser.add_argument(
        "--keyed",
        type=Path,
        metavar="SPEC",
        help="JSON list of {emotion, event, clips: [path | {path, start, duration}]}; "
        "--emotion/--event are then ignored",
    )
    parser.add_argument(
        "--call-model",
        action="store_true",
        help="build the keyed model of callsense's tests from ../shared/testdata and the "
        "asterisk sounds: RAVDESS actor 01 -> ANGRY/Speech, actor 02 and asterisk prompts -> "
        "NEUTRAL/Speech, music -> EMO_UNKNOWN/BGM, noise and silence -> EMO_UNKNOWN/Event_UNK",
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help="real SenseVoice files (default: %(default)s)",
    )
    parser.add_argument(
        "--vad-source",
        type=Path,
        default=DEFAULT_VAD_SOURCE,
        help="FSMN-VAD model files copied to OUT_DIR/vad when present (default: %(default)s)",
    )
    parser.add_argument("--no-vad", action="store_true", help="do not bundle a VAD model")
    args = parser.parse_args(argv)
    vad_source = None if args.no_vad else args.vad_source
    try:
        if args.call_model:
            out = build_call_model(args.out_dir, source=args.source, vad_source=vad_source)
        elif args.keyed:
            out = build_keyed_model(
                args.out_dir,
                _load_spec(args.keyed),
                lang=args.lang,
                text=args.text,
                source=args.source,
                vad_source=vad_source,
            )
        else:
            out = build_fixed_model(
                args.out_dir,
                lang=args.lang,
                emotion=args.emotion,
                event=args.event,
                text=args.text,
                source=args.source,
                vad_source=vad_source,
            )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
