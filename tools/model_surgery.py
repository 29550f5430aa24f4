"""The weight edits that make a tiny SenseVoiceSmall say chosen things (steps of
../shared/sensevoice/RECIPE.md): the fixed surgery (every input gives one tag set and text)
and the keyed one (a closed-form ridge classifier over encoder-input frames picks the tags).
No training: each edit is arithmetic on the real architecture's weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ALPHA",
    "LANG_ROWS",
    "KeyedClass",
    "fit_ridge",
    "fixed_surgery",
    "key_surgery",
    "tag_id",
]

# Query rows of SenseVoiceSmall.embed and the language each one asks for (funasr's lid_dict).
LANG_ROWS = {"zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
_ITN_ROWS = {"withitn": 14, "woitn": 15}
_N_QUERY = 16
# Surgery constants from RECIPE.md: query one-hot, text channel, ctc gains.
_A, _C, ALPHA, _GAMMA, _KAPPA = 100.0, 15.0, 10.0, 40.0, 2.0
_TEXT, _END, _S, _Z = 16, 17, 18, 19
_CTR = 5  # centre tap of the 11-wide FSMN kernel (left pad 5)


@dataclass(frozen=True, slots=True)
class KeyedClass:
    """One class of a keyed model: the tags it emits and the clips that define it."""

    emotion: str
    event: str
    clips: tuple[np.ndarray, ...]


def tag_id(sp: Any, tag: str) -> int:
    piece = f"<|{tag}|>"
    token = sp.piece_to_id(piece)
    if token == 0 or sp.id_to_piece(token) != piece:
        raise ValueError(f"unknown SenseVoice tag {tag!r}")
    return int(token)


def layers(model: Any) -> list[Any]:
    enc = model.encoder
    return [*enc.encoders0, *enc.encoders, *enc.tp_encoders]


def fixed_surgery(model: Any, sp: Any, *, lang: str, text: str) -> None:
    """RECIPE steps 1-5: frames stop mixing; each query row and the text get one hidden dim."""
    if lang not in LANG_ROWS:
        raise ValueError(f"lang must be one of {', '.join(LANG_ROWS)} (got {lang!r})")
    pieces = sp.encode(text) if text else []
    if len(pieces) > 2:
        raise ValueError(
            f"text {text!r} is {len(pieces)} tokenizer pieces; use at most 2 (e.g. 'Yes.')"
        )
    d = model.encoder.output_size()
    model.embed.weight.zero_()
    for i in range(_N_QUERY):
        model.embed.weight[i, i] = _A
    for layer in layers(model):
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
    lo.weight[tag_id(sp, lang), 0] = ALPHA
    for name, row in LANG_ROWS.items():
        lo.weight[tag_id(sp, name), row] = ALPHA
    for name, row in _ITN_ROWS.items():
        lo.weight[tag_id(sp, name), row] = ALPHA
    # speech frames emit the text (or the blank, which CTC drops, when there is no text)
    lo.weight[pieces[0] if pieces else 0, _TEXT] = ALPHA
    lo.weight[pieces[-1] if pieces else 0, _END] = ALPHA


def fit_ridge(
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


def key_surgery(
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
        token = tag_id(sp, tag)
        lo[token, row] = ALPHA
        lo[token, f] = _GAMMA
