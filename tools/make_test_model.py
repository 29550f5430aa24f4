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
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo's packages importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callsense.pipeline.quiet import import_funasr
from tools import shared_assets, system_assets

__all__ = [
    "CALL_MODEL_CLASSES",
    "CALL_MODEL_HELD_OUT",
    "DEFAULT_SOURCE",
    "DEFAULT_VAD_SOURCE",
    "ClipRef",
    "KeyedClass",
    "build_call_model",
    "build_fixed_model",
    "build_keyed_model",
    "clip_path",
    "decode_audio",
    "load_clip",
    "main",
    "telephone",
    "white_noise",
]

DEFAULT_SOURCE = shared_assets.sensevoice_files()
DEFAULT_VAD_SOURCE = shared_assets.fsmn_vad_dir()
VAD_FILES = ("config.yaml", "configuration.json", "am.mvn", "model.pt")
TESTDATA = shared_assets.testdata()
# Clip names under these prefixes are Debian's asterisk sounds, found by tools.system_assets.
PROMPT_PREFIX = "asterisk-prompts/"
MOH_PREFIX = "asterisk-moh/"
# The WAV files of Debian's asterisk-moh-opsound-wav, named so a missing one is an error.
MOH_FILES = (
    "macroform-cold_day.wav",
    "macroform-robot_dity.wav",
    "macroform-the_simplicity.wav",
    "manolo_camp-morning_coffee.wav",
    "reno_project-system.wav",
)
COPIED_FILES = ("am.mvn", "chn_jpn_yue_eng_ko_spectok.bpe.model", "configuration.json")
SAMPLE_RATE = 16000

# Query rows of SenseVoiceSmall.embed and the language each one asks for (funasr's lid_dict).
_LANG_ROWS = {"zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
_ITN_ROWS = {"withitn": 14, "woitn": 15}
_N_QUERY = 16
_FIXED_SIZE = {"output_size": 64, "attention_heads": 2, "linear_units": 128, "num_blocks": 2}
# Surgery constants from RECIPE.md: query one-hot, text channel, ctc gains.
_A, _C, _ALPHA, _GAMMA, _KAPPA = 100.0, 15.0, 10.0, 40.0, 2.0
_TEXT, _END, _S, _Z = 16, 17, 18, 19
_CTR = 5  # centre tap of the 11-wide FSMN kernel (left pad 5)


@dataclass(frozen=True, slots=True)
class KeyedClass:
    """One class of a keyed model: the tags it emits and the clips that define it."""

    emotion: str
    event: str
    clips: tuple[np.ndarray, ...]


def decode_audio(
    path: str | Path, *, start: float | None = None, duration: float | None = None
) -> np.ndarray:
    """Decode any file ffmpeg reads to 16 kHz mono float32 (the first audio stream)."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error"]
    if start is not None:
        cmd += ["-ss", str(start)]
    if duration is not None:
        cmd += ["-t", str(duration)]
    cmd += ["-i", str(path), "-map", "0:a:0", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    cmd += ["-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise ValueError(f"{path}: ffmpeg could not decode it: {proc.stderr.decode()[-300:]}")
    audio = np.frombuffer(proc.stdout, dtype=np.float32).copy()
    if audio.size == 0:
        raise ValueError(f"{path}: no audio samples")
    return audio


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
        _fixed_surgery(model, sp, lang=lang, text=text)
        lo = model.ctc.ctc_lo.weight
        lo[_tag_id(sp, emotion), 1] = _ALPHA
        lo[_tag_id(sp, event), 2] = _ALPHA
        if emotion == "EMO_UNKNOWN":  # ban_emo_unk falls back to NEUTRAL, as the real model would
            lo[_tag_id(sp, "NEUTRAL"), 1] = 0.9 * _ALPHA
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
        _fixed_surgery(model, sp, lang=lang, text=text)
        weights, bias = _fit_ridge(torch, model, out, keyed, ridge)
        _key_surgery(model, sp, weights, bias, emitters)
    torch.save(model.state_dict(), out / "model.pt")
    return out


# The keyed model of callsense's tests: two voices of a call, hold music, and "nothing".
# Plain file names are in ../shared/testdata; PROMPT_PREFIX and MOH_PREFIX names are Debian's
# asterisk sounds; absolute paths are used as they are.
@dataclass(frozen=True, slots=True)
class ClipRef:
    """A training or held-out clip: a file, optionally a piece of it (seconds)."""

    file: str
    start: float | None = None
    duration: float | None = None


def _ravdess(actor: int, *codes: str) -> tuple[ClipRef, ...]:
    return tuple(ClipRef(f"ravdess_03-01-{c}-{actor:02d}.wav") for c in codes)


def _prompts(*names: str) -> tuple[ClipRef, ...]:
    return tuple(ClipRef(f"{PROMPT_PREFIX}{n}.wav") for n in names)


def _music(
    offsets: Sequence[int], moh_offsets: Sequence[int], length: float
) -> tuple[ClipRef, ...]:
    vibe = "librosa_Kevin_MacLeod_-_Vibe_Ace.ogg"
    return tuple(ClipRef(vibe, float(s), length) for s in offsets) + tuple(
        ClipRef(f"{MOH_PREFIX}{m}", float(s), length) for m in MOH_FILES for s in moh_offsets
    )


# class -> (emotion, event, training clips); N's noise and silence are generated.
CALL_MODEL_CLASSES: dict[str, tuple[str, str, tuple[ClipRef, ...]]] = {
    # RAVDESS actor 01 (male) in three emotions: the class is the voice, not the emotion
    "A": ("ANGRY", "Speech", _ravdess(1, "05-01-01-01", "01-01-01-01", "03-02-01-01")),
    # RAVDESS actor 02 (female) and the asterisk prompt voice (female, 8 kHz): an agent
    "B": (
        "NEUTRAL",
        "Speech",
        _ravdess(2, "01-01-02-01", "04-02-01-01")
        + _prompts(
            "cannot-complete-as-dialed",
            "check-number-dial-again",
            "all-circuits-busy-now",
            "conf-invalidpin",
        ),
    ),
    # music: Vibe Ace 0-15 s in 3 s pieces; each asterisk hold-music file at 10 s and 40 s
    "C": ("EMO_UNKNOWN", "BGM", _music(range(0, 15, 3), (10, 40), 3.0)),
    "N": ("EMO_UNKNOWN", "Event_UNK", ()),
}
# Clips the call model never saw, per class; tests assert on these.
CALL_MODEL_HELD_OUT: dict[str, tuple[ClipRef, ...]] = {
    "A": _ravdess(1, "05-02-01-01", "05-02-02-01"),
    "B": _ravdess(2, "05-02-01-02", "03-01-02-01")
    + _prompts(
        "agent-loginok",
        "auth-thankyou",
        "call-forwarding",
        "conf-getpin",
        "conf-hasjoin",
        "vm-goodbye",
        "queue-thankyou",
    ),
    "C": _music((21, 30, 40, 50), (20, 60), 4.0),
}
_NOISE_AMPLITUDES = (0.01, 0.1, 0.5)


def white_noise(amplitude: float, seconds: float, seed: int) -> np.ndarray:
    """Seeded Gaussian white noise at 16 kHz (the "no key" class trains and tests on it)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(round(SAMPLE_RATE * seconds)) * amplitude).astype(np.float32)


def telephone(audio: np.ndarray) -> np.ndarray:
    """16 kHz audio sent through an 8 kHz G.711 mu-law line and back, as a phone call hears it."""
    encode = ["ffmpeg", "-nostdin", "-v", "error", "-f", "f32le", "-ar", str(SAMPLE_RATE)]
    encode += ["-ac", "1", "-i", "-", "-ar", "8000", "-c:a", "pcm_mulaw", "-f", "wav", "-"]
    line = subprocess.run(
        encode, input=audio.astype(np.float32).tobytes(), capture_output=True, check=True
    )
    decode = ["ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    back = subprocess.run(
        [*decode, "-f", "f32le", "-"], input=line.stdout, capture_output=True, check=True
    )
    return np.frombuffer(back.stdout, dtype=np.float32).copy()


def clip_path(ref: ClipRef, testdata: str | Path = TESTDATA) -> Path:
    """Where a clip's file is on this machine (a missing Debian file names its package)."""
    if ref.file.startswith(PROMPT_PREFIX):
        return system_assets.asterisk_prompts() / ref.file.removeprefix(PROMPT_PREFIX)
    if ref.file.startswith(MOH_PREFIX):
        moh = {p.name: p for p in system_assets.music_on_hold()}
        name = ref.file.removeprefix(MOH_PREFIX)
        if name not in moh:
            raise system_assets.MissingSystemAsset(
                f"{name} is not among the music-on-hold files: install the Debian package "
                "asterisk-moh-opsound-wav"
            )
        return moh[name]
    path = Path(ref.file)
    return path if path.is_absolute() else Path(testdata) / path


def load_clip(ref: ClipRef, testdata: str | Path = TESTDATA) -> np.ndarray:
    """Decode a CALL_MODEL_* clip."""
    return decode_audio(clip_path(ref, testdata), start=ref.start, duration=ref.duration)


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


def _tag_id(sp: Any, tag: str) -> int:
    piece = f"<|{tag}|>"
    token = sp.piece_to_id(piece)
    if token == 0 or sp.id_to_piece(token) != piece:
        raise ValueError(f"unknown SenseVoice tag {tag!r}")
    return int(token)


def _layers(model: Any) -> list[Any]:
    enc = model.encoder
    return [*enc.encoders0, *enc.encoders, *enc.tp_encoders]


def _fixed_surgery(model: Any, sp: Any, *, lang: str, text: str) -> None:
    """RECIPE steps 1-5: frames stop mixing; each query row and the text get one hidden dim."""
    if lang not in _LANG_ROWS:
        raise ValueError(f"lang must be one of {', '.join(_LANG_ROWS)} (got {lang!r})")
    pieces = sp.encode(text) if text else []
    if len(pieces) > 2:
        raise ValueError(
            f"text {text!r} is {len(pieces)} tokenizer pieces; use at most 2 (e.g. 'Yes.')"
        )
    d = model.encoder.output_size()
    model.embed.weight.zero_()
    for i in range(_N_QUERY):
        model.embed.weight[i, i] = _A
    for layer in _layers(model):
        att = layer.self_attn
        att.linear_out.weight.zero_()
        att.linear_out.bias.zero_()
        att.fsmn_block.weight.zero_()
        att.linear_q_k_v.weight[2 * d :].zero_()
        att.linear_q_k_v.bias[2 * d :].zero_()
        layer.feed_forward.w_2.weight.zero_()
        layer.feed_forward.w_2.bias.zero_()
    first = model.encoder.encoders0[0].self_attn
    for i in range(_N_QUERY):
        first.linear_q_k_v.weight[2 * d + i, i] = 1.0
    first.linear_q_k_v.bias[2 * d + _TEXT] = _C
    first.linear_q_k_v.bias[2 * d + _END] = 2 * _C
    first.fsmn_block.weight[_END, 0, _CTR + 1] = -1.0  # nonzero only on the last valid frame

    lo = model.ctc.ctc_lo
    lo.weight.zero_()
    lo.bias.zero_()
    lo.weight[_tag_id(sp, lang), 0] = _ALPHA
    for name, row in _LANG_ROWS.items():
        lo.weight[_tag_id(sp, name), row] = _ALPHA
    for name, row in _ITN_ROWS.items():
        lo.weight[_tag_id(sp, name), row] = _ALPHA
    # speech frames emit the text (or the blank, which CTC drops, when there is no text)
    lo.weight[pieces[0] if pieces else 0, _TEXT] = _ALPHA
    lo.weight[pieces[-1] if pieces else 0, _END] = _ALPHA


def _fit_ridge(
    torch: Any, model: Any, out: Path, classes: list[KeyedClass], lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ridge regression from encoder-input frames to one-hot classes.

    Features are exactly what ``encoders0`` sees (same frontend, CMVN, scaling, position
    encoding and norm), minus input dims 0-15 where the query one-hots live. Every clip
    weighs the same however long it is.
    """
    import yaml
    from funasr.frontends.wav_frontend import WavFrontend
    from funasr.utils.load_utils import extract_fbank

    cfg = yaml.safe_load((out / "config.yaml").read_text(encoding="utf-8"))
    frontend = WavFrontend(**{**cfg["frontend_conf"], "cmvn_file": str(out / "am.mvn")})
    enc = model.encoder
    d = enc.output_size()
    rows, targets, weights = [], [], []
    for k, cls in enumerate(classes):
        for clip in cls.clips:
            wav = torch.as_tensor(np.asarray(clip, dtype=np.float32))
            feats, _ = extract_fbank([wav], data_type="sound", frontend=frontend)
            x = torch.cat([torch.zeros(1, 4, feats.shape[-1]), feats], 1) * d**0.5
            frames = enc.encoders0[0].norm1(enc.embed(x))[0, 4:, _N_QUERY:].double().numpy()
            rows.append(frames)
            onehot = np.zeros((len(frames), len(classes)))
            onehot[:, k] = 1.0
            targets.append(onehot)
            weights.append(np.full(len(frames), 1.0 / len(frames)))
    x_all, y_all, w = np.concatenate(rows), np.concatenate(targets), np.concatenate(weights)
    w = w / w.sum()
    x_mean, y_mean = w @ x_all, w @ y_all
    xc = x_all - x_mean
    # RECIPE's weights sum to the number of clips; ours sum to 1, so scale lambda to match
    gram = xc.T @ (xc * w[:, None]) + (lam / len(rows)) * np.eye(xc.shape[1])
    coef = np.linalg.solve(gram, xc.T @ ((y_all - y_mean) * w[:, None]))
    return coef, y_mean - x_mean @ coef


def _key_surgery(
    model: Any,
    sp: Any,
    coef: np.ndarray,
    bias: np.ndarray,
    emitters: dict[tuple[int, str], list[int]],
) -> None:
    """RECIPE keyed steps 3-7: per-frame scores, a uniform-attention pool, max per tag."""
    import torch

    d = model.encoder.output_size()
    k = coef.shape[1]
    p = [20 + i for i in range(k)]
    g = [20 + k + i for i in range(k)]

    first = model.encoder.encoders0[0].self_attn
    first.linear_q_k_v.weight[2 * d + p[0] : 2 * d + p[-1] + 1, _N_QUERY:] = torch.as_tensor(
        coef.T, dtype=torch.float32
    )
    first.linear_q_k_v.bias[2 * d + _S] = 1.0
    first.fsmn_block.weight[_S, 0, _CTR - 4] = 1.0  # S(t) = [t >= 4]: speech frames only
    first.fsmn_block.weight[_S, 0, _CTR] = -1.0

    pool = model.encoder.encoders[0]
    for norm in (pool.norm1, pool.norm2):
        norm.weight.fill_(1.0)
        norm.bias.zero_()
    att = pool.self_attn
    att.linear_q_k_v.weight.zero_()  # q = k = 0: attention is a uniform mean over valid frames
    att.linear_q_k_v.bias.zero_()
    for i in range(k):
        row = 2 * d + p[i]
        att.linear_q_k_v.weight[row, p[i]] = 1.0
        att.linear_q_k_v.weight[row, _S] = float(bias[i])
        att.linear_q_k_v.weight[row, _Z] = -(1.0 + float(bias[i]))  # cancels norm1's mean
        att.linear_out.weight[g[i], p[i]] = _KAPPA
        att.fsmn_block.weight[p[i], 0, _CTR] = -1.0  # no per-frame leak through the FSMN memory
    ffn = pool.feed_forward
    ffn.w_1.weight.zero_()
    ffn.w_1.bias.zero_()
    lo = model.ctc.ctc_lo.weight
    unit = 0
    for o, ((row, tag), owners) in enumerate(sorted(emitters.items())):
        f = 20 + 2 * k + o
        a = owners[0]
        ffn.w_1.weight[unit, g[a]], ffn.w_1.weight[unit, _Z] = 1.0, -1.0
        ffn.w_1.weight[unit + 1, g[a]], ffn.w_1.weight[unit + 1, _Z] = -1.0, 1.0
        ffn.w_2.weight[f, unit], ffn.w_2.weight[f, unit + 1] = 1.0, -1.0
        unit += 2
        for b in owners[1:]:  # F = G_a + relu(G_b - G_a) = max(G_a, G_b)
            ffn.w_1.weight[unit, g[b]], ffn.w_1.weight[unit, g[a]] = 1.0, -1.0
            ffn.w_2.weight[f, unit] = 1.0
            unit += 1
        token = _tag_id(sp, tag)
        lo[token, row] = _ALPHA
        lo[token, f] = _GAMMA


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
        "--lang", default="en", choices=sorted(_LANG_ROWS), help="tag for language=auto"
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
