"""SenseVoiceSmall on ONNX Runtime: the fast CPU backend, without importing funasr.

Users download the torch checkpoint; ``export_onnx`` turns a model directory into an
ONNX one (optionally with signed int8 weights, whose kernels use the CPU's VNNI
instructions). ``SenseVoiceOnnxRecognizer`` then loads only the ONNX file, the
tokenizer and the CMVN: no torch checkpoint is materialised, so there is no 3 GB peak
at load, and the 5 s ``import funasr`` is skipped. Features (fbank, LFR, CMVN), the
query frames and the greedy CTC decoding reproduce funasr's ``SenseVoiceSmall.inference``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from callsense.core.errors import InputError
from callsense.core.richtext import EMOTIONS, EVENTS, LANGS
from callsense.pipeline.model import TagConfidence
from callsense.pipeline.recognizer import LANGUAGES, Recognition, Recognizer, RecognizerCapabilities
from callsense.pipeline.sensevoice import MIN_SAMPLES

__all__ = [
    "LID_QUERY",
    "TEXTNORM_QUERY",
    "Quantize",
    "SenseVoiceOnnxRecognizer",
    "export_onnx",
    "greedy_ctc",
    "onnx_file_name",
]

Quantize = Literal["none", "int8"]

# Rows of SenseVoiceSmall's 16-row query embedding (funasr's lid_dict / textnorm_dict).
LID_QUERY = {"auto": 0, "zh": 3, "en": 4, "yue": 7, "ja": 11, "ko": 12, "nospeech": 13}
TEXTNORM_QUERY = {"withitn": 14, "woitn": 15}
BLANK_ID = 0
EMO_UNKNOWN_ID = 25009
SAMPLE_RATE = 16000

TOKENIZER_FILE = "chn_jpn_yue_eng_ko_spectok.bpe.model"
CMVN_FILE = "am.mvn"
META_FILE = "onnx_meta.json"
_COPIED = (TOKENIZER_FILE, CMVN_FILE, "config.yaml", "configuration.json")


def onnx_file_name(quantize: Quantize) -> str:
    return "model.int8.onnx" if quantize == "int8" else "model.onnx"


# --------------------------------------------------------------------------- export


def _load_torch_model(model_dir: Path):  # -> funasr SenseVoiceSmall
    """Build SenseVoiceSmall from the dir's config and load model.pt strictly.

    funasr's own loader skips mismatched tensors silently; an export must not.
    The checkpoint is memory-mapped so the load does not hold two copies of it.
    """
    import sentencepiece as spm
    import torch
    import yaml

    from callsense.pipeline.quiet import import_funasr

    import_funasr()
    from funasr.models.sense_voice.model import SenseVoiceSmall

    conf = yaml.safe_load((model_dir / "config.yaml").read_text(encoding="utf-8"))
    sp = spm.SentencePieceProcessor(model_file=str(model_dir / TOKENIZER_FILE))
    frontend = conf.get("frontend_conf", {})
    input_size = int(frontend.get("n_mels", 80)) * int(frontend.get("lfr_m", 7))
    model = SenseVoiceSmall(
        encoder=conf.get("encoder", "SenseVoiceEncoderSmall"),
        encoder_conf=conf["encoder_conf"],
        input_size=input_size,
        vocab_size=sp.vocab_size(),
        **conf.get("model_conf", {}),
    )
    state = torch.load(model_dir / "model.pt", map_location="cpu", mmap=True, weights_only=True)
    for wrapper in ("state_dict", "model"):
        if isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)
    return model.eval(), conf


def _export_module(model):  # -> torch.nn.Module
    """Wrap the model so the graph takes features + query ids and returns CTC logits."""
    import torch

    class SenseVoiceExport(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, speech, speech_lengths, language, textnorm):
            m = self.model
            batch = speech.size(0)
            emo_event = m.embed(torch.tensor([[1, 2]], dtype=torch.long)).expand(batch, -1, -1)
            query = torch.cat(
                (
                    m.embed(language.long()).unsqueeze(1),
                    emo_event,
                    m.embed(textnorm.long()).unsqueeze(1),
                ),
                dim=1,
            )
            x = torch.cat((query, speech), dim=1)
            enc, lens = m.encoder(x, speech_lengths + 4)
            return m.ctc.ctc_lo(enc), lens.to(torch.int32)

    return SenseVoiceExport().eval()


def export_onnx(model_dir: Path | str, out_dir: Path | str, quantize: Quantize = "none") -> Path:
    """Export a SenseVoiceSmall dir (model.pt + config + tokenizer + am.mvn) to ONNX.

    Always writes ``model.onnx`` (fp32); with ``quantize="int8"`` also ``model.int8.onnx``
    with signed int8 MatMul weights. Returns the path of the requested file.
    """
    import torch

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    for name in ("model.pt", *_COPIED):
        if not (model_dir / name).is_file():
            raise InputError(f"{model_dir / name}: missing (not a SenseVoiceSmall model dir)")
    out_dir.mkdir(parents=True, exist_ok=True)
    model, conf = _load_torch_model(model_dir)
    wrapper = _export_module(model)
    n_in = model.encoder.encoders0[0].in_size
    dummy = (
        torch.randn(2, 30, n_in),
        torch.tensor([30, 17], dtype=torch.int32),
        torch.tensor([0, 4], dtype=torch.int32),
        torch.tensor([14, 15], dtype=torch.int32),
    )
    fp32 = out_dir / onnx_file_name("none")
    with torch.no_grad(), warnings.catch_warnings():
        # The tracer's notes on constants and slices are expected for this graph.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            dummy,
            str(fp32),
            dynamo=False,
            input_names=["speech", "speech_lengths", "language", "textnorm"],
            output_names=["logits", "logits_lengths"],
            dynamic_axes={
                "speech": {0: "batch", 1: "frames"},
                "speech_lengths": {0: "batch"},
                "language": {0: "batch"},
                "textnorm": {0: "batch"},
                "logits": {0: "batch", 1: "frames_plus_4"},
                "logits_lengths": {0: "batch"},
            },
            opset_version=17,
        )
    del model, wrapper
    for name in _COPIED:
        shutil.copyfile(model_dir / name, out_dir / name)
    target = fp32
    if quantize == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        target = out_dir / onnx_file_name("int8")
        # Signed weights: the unsigned default (funasr's) misses the VNNI int8 kernels.
        quantize_dynamic(fp32, target, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    frontend = conf.get("frontend_conf", {})
    meta = {
        "format": 1,
        "vocab_size": int(model_vocab(out_dir)),
        "frontend": {
            k: frontend[k]
            for k in ("fs", "window", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n")
            if k in frontend
        }
        | {"dither": float(frontend.get("dither", 0.0))},
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return target


def model_vocab(model_dir: Path) -> int:
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(model_dir / TOKENIZER_FILE)).vocab_size()


# --------------------------------------------------------------------------- frontend


def _read_cmvn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Shift and scale vectors from a Kaldi nnet ``am.mvn`` (<AddShift>, <Rescale>)."""
    text = path.read_text(encoding="utf-8")
    vectors = {}
    for tag in ("AddShift", "Rescale"):
        found = re.search(rf"<{tag}>[^\n]*\n<LearnRateCoef>\s+\S+\s+\[([^\]]*)\]", text)
        if found is None:
            raise InputError(f"{path}: no <{tag}> vector (not a Kaldi CMVN file)")
        vectors[tag] = np.array(found.group(1).split(), dtype=np.float32)
    return vectors["AddShift"], vectors["Rescale"]


class _Frontend:
    """Kaldi fbank → low-frame-rate stacking → CMVN, as funasr's WavFrontend computes them."""

    def __init__(self, cmvn_file: Path, conf: dict) -> None:
        import kaldi_native_fbank as knf

        self._knf = knf
        self.n_mels = int(conf.get("n_mels", 80))
        self.lfr_m = int(conf.get("lfr_m", 7))
        self.lfr_n = int(conf.get("lfr_n", 6))
        self.frame_length = float(conf.get("frame_length", 25))
        self.frame_shift = float(conf.get("frame_shift", 10))
        self.window = str(conf.get("window", "hamming"))
        self.dither = float(conf.get("dither", 0.0))
        self.shift, self.scale = _read_cmvn(cmvn_file)

    def fbank(self, wav: np.ndarray) -> np.ndarray:
        opts = self._knf.FbankOptions()
        fo = opts.frame_opts
        fo.samp_freq = SAMPLE_RATE
        fo.dither = self.dither
        fo.window_type = self.window
        fo.frame_shift_ms = self.frame_shift
        # funasr shortens the window for clips under one frame rather than failing.
        fo.frame_length_ms = min(self.frame_length, wav.size / SAMPLE_RATE * 1000)
        fo.snip_edges = True
        opts.mel_opts.num_bins = self.n_mels
        opts.energy_floor = 0.0
        fb = self._knf.OnlineFbank(opts)
        fb.accept_waveform(SAMPLE_RATE, (wav * 32768.0).astype(np.float32))
        fb.input_finished()
        n = fb.num_frames_ready
        if n == 0:
            raise InputError(f"clip of {wav.size} samples is too short for one fbank frame")
        return np.stack([fb.get_frame(i) for i in range(n)]).astype(np.float32)

    def __call__(self, wav: np.ndarray) -> np.ndarray:
        feats = self.fbank(wav)
        t = feats.shape[0]
        t_lfr = -(-t // self.lfr_n)
        left = (self.lfr_m - 1) // 2
        need = (t_lfr - 1) * self.lfr_n + self.lfr_m
        right = max(0, need - (t + left))
        padded = np.concatenate(
            [np.repeat(feats[:1], left, 0), feats, np.repeat(feats[-1:], right, 0)]
        )
        idx = np.arange(t_lfr)[:, None] * self.lfr_n + np.arange(self.lfr_m)
        lfr = padded[idx].reshape(t_lfr, -1)
        return (lfr + self.shift) * self.scale


# --------------------------------------------------------------------------- decoding


def greedy_ctc(
    logits: np.ndarray,
    *,
    ban_emo_unk: bool = False,
    tag_ids: Sequence[Collection[int]] | None = None,
) -> tuple[list[int], TagConfidence]:
    """funasr's greedy CTC (argmax, collapse repeats, drop blank) plus tag confidences.

    ``logits`` is one clip's (frames, vocab) CTC output, query frames included. The
    confidence of each tag is the softmax probability of the chosen token at its frame
    (0 language, 1 emotion, 2 event); with ``tag_ids`` (language, emotion, event token
    ids) it is None where the frame chose a token outside its group, as the torch
    backend reports it.
    """
    if ban_emo_unk:
        logits = logits.copy()
        logits[:, EMO_UNKNOWN_ID] = -np.inf
    best = logits.argmax(axis=-1)
    keep = np.ones(best.size, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    ids = [int(i) for i in best[keep] if i != BLANK_ID]
    head = logits[:3].astype(np.float64)
    head = head - head.max(axis=-1, keepdims=True)
    probs = np.exp(head)
    top = probs.max(axis=-1) / probs.sum(axis=-1)
    conf: list[float | None] = [float(p) for p in top] + [None] * (3 - top.size)
    if tag_ids is not None:
        for pos in range(top.size):
            if int(best[pos]) not in tag_ids[pos]:
                conf[pos] = None
    return ids, TagConfidence(lang=conf[0], emotion=conf[1], event=conf[2])


# --------------------------------------------------------------------------- recognizer


class SenseVoiceOnnxRecognizer(Recognizer):
    """SenseVoiceSmall from an ``export_onnx`` directory, run by ONNX Runtime on CPU."""

    def __init__(
        self,
        model_dir: Path | str,
        *,
        quantize: Quantize = "none",
        threads: int | None = None,
        use_itn: bool = True,
        ban_emo_unk: bool = False,
        batch_size: int = 1,
        spinning: bool = True,
    ) -> None:
        import onnxruntime as ort
        import sentencepiece as spm

        self._dir = Path(model_dir)
        onnx_path = self._dir / onnx_file_name(quantize)
        meta_path = self._dir / META_FILE
        for path in (onnx_path, meta_path, self._dir / TOKENIZER_FILE, self._dir / CMVN_FILE):
            if not path.is_file():
                raise InputError(
                    f"{path}: missing; build it with `callsense model export-onnx MODEL_DIR "
                    f"{self._dir}" + (" --quantize int8`" if quantize == "int8" else "`")
                )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self._frontend = _Frontend(self._dir / CMVN_FILE, meta.get("frontend", {}))
        self._sp = spm.SentencePieceProcessor(model_file=str(self._dir / TOKENIZER_FILE))
        self._tag_ids = [
            frozenset(self._sp.piece_to_id(f"<|{t}|>") for t in group) - {self._sp.unk_id()}
            for group in (LANGS, EMOTIONS, EVENTS)
        ]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not spinning:
            # a service: idle intra-op threads would spin on the cores the streaming VAD
            # needs (8-stream live p95 348 -> 230 ms with spinning off); batch work keeps it
            # (best recognizer RTF 0.0204 with it, 0.0223 without)
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._textnorm = TEXTNORM_QUERY["withitn" if use_itn else "woitn"]
        self._ban_emo_unk = ban_emo_unk
        self._batch_size = max(1, batch_size)
        self.capabilities = RecognizerCapabilities(
            name=f"sensevoice-onnx{'-int8' if quantize == 'int8' else ''}:{self._dir}",
            confidence=True,
            batching=True,
        )

    @property
    def model_id(self) -> str:
        return self.capabilities.name

    def features(self, clip: np.ndarray) -> np.ndarray:
        """LFR+CMVN features (frames, 560) of one 16 kHz clip."""
        return self._frontend(np.asarray(clip, dtype=np.float32).reshape(-1))

    def logits(self, feats: Sequence[np.ndarray], *, language: str = "auto") -> list[np.ndarray]:
        """CTC logits (frames + 4, vocab) per feature matrix, run as one padded batch."""
        if language not in LID_QUERY:
            raise InputError(f"language: must be one of {', '.join(LANGUAGES)} (got {language!r})")
        n = len(feats)
        longest = max(f.shape[0] for f in feats)
        speech = np.zeros((n, longest, feats[0].shape[1]), dtype=np.float32)
        for i, f in enumerate(feats):
            speech[i, : f.shape[0]] = f
        out, lens = self._session.run(
            None,
            {
                "speech": speech,
                "speech_lengths": np.array([f.shape[0] for f in feats], dtype=np.int32),
                "language": np.full(n, LID_QUERY[language], dtype=np.int32),
                "textnorm": np.full(n, self._textnorm, dtype=np.int32),
            },
        )
        return [out[i, : int(lens[i])] for i in range(n)]

    def recognize(
        self, clips: Sequence[np.ndarray], *, language: str = "auto"
    ) -> list[Recognition]:
        """One ``Recognition`` per clip; clips under 25 ms abstain with ``raw=""``."""
        audio = [np.asarray(c, dtype=np.float32) for c in clips]
        for i, a in enumerate(audio):
            if a.ndim != 1:
                raise InputError(f"clip {i}: expected mono samples (1-D), got shape {a.shape}")
        results = [Recognition(raw="")] * len(audio)
        todo = [i for i, a in enumerate(audio) if a.size >= MIN_SAMPLES]
        feats = {i: self.features(audio[i]) for i in todo}
        # Length-sorted batches waste the least compute on padding.
        todo.sort(key=lambda i: feats[i].shape[0])
        for start in range(0, len(todo), self._batch_size):
            chunk = todo[start : start + self._batch_size]
            outputs = self.logits([feats[i] for i in chunk], language=language)
            for i, logits in zip(chunk, outputs, strict=True):
                ids, conf = greedy_ctc(logits, ban_emo_unk=self._ban_emo_unk, tag_ids=self._tag_ids)
                results[i] = Recognition(raw=self._sp.decode(ids), confidence=conf)
        return results
