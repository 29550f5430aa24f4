"""SenseVoice-Small as torch dynamic int8, loaded without ever holding the fp32 model.

funasr's own load builds the fp32 model with random weights, reads the whole checkpoint
into memory and copies it in: about 3 GB at peak for SenseVoiceSmall, and quantizing
afterwards only shrinks what stays. Here the module is built on the ``meta`` device (no
memory), the checkpoint is memory-mapped, and each ``nn.Linear`` is quantized straight
from the mapped fp32 tensor into a dynamic int8 Linear (per-channel signed weights).
The mapped pages of a tensor are given back to the kernel as soon as it is converted, so
the peak stays near the size of the int8 model plus one layer.

The model is registered with funasr under its own name and handed to ``AutoModel`` with
the directory's resolved config, so ``generate`` (frontend, tokenizer, decoding) is
funasr's, exactly as for the fp32 backend.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from callsense.core.errors import InputError

__all__ = ["INT8_MODEL_NAME", "load_int8_automodel", "load_int8_model"]

INT8_MODEL_NAME = "CallsenseSenseVoiceSmallInt8"
_MADV_DONTNEED = 4


def load_int8_automodel(model: str, *, device: str = "cpu", ncpu: int = 4) -> Any:
    """A ``funasr.AutoModel`` whose model is the int8 SenseVoiceSmall of ``model``.

    ``model`` is a local directory or a hub id (funasr resolves and downloads it as usual).
    """
    from callsense.pipeline.quiet import import_funasr

    import_funasr()
    from funasr import AutoModel
    from funasr.download.download_model_from_hub import download_model

    _register()
    kwargs = download_model(model=model, disable_update=True)
    kwargs = dict(kwargs)
    if "encoder_conf" not in kwargs:  # nothing resolved: the download failed (offline?)
        raise RuntimeError(f"{model}: no SenseVoice config found (download failed?)")
    if kwargs.get("model") != "SenseVoiceSmall":
        raise InputError(f"{model}: holds a {kwargs.get('model')} model, not SenseVoiceSmall")
    checkpoint = kwargs.pop("init_param", None)
    if not checkpoint or not Path(checkpoint).is_file():
        raise InputError(f"{model}: no model.pt weights file")
    kwargs["model"] = INT8_MODEL_NAME
    kwargs.setdefault("model_conf", {})
    kwargs["callsense_checkpoint"] = str(checkpoint)
    # model_conf present: AutoModel skips the hub and builds from these resolved kwargs
    return AutoModel(
        **{**kwargs, "device": device, "ncpu": ncpu, "disable_pbar": True, "disable_update": True}
    )


def load_int8_model(module: Any, checkpoint: str | Path) -> None:
    """Fill ``module`` (built on ``meta``) from an fp32 checkpoint, Linears as int8.

    Every tensor the module expects must be in the checkpoint with the same shape, and
    nothing else: a checkpoint from another model size fails here, it is never left random.
    """
    import torch
    from torch import nn
    from torch.ao.nn.quantized.dynamic import Linear as QLinear
    from torch.ao.quantization import per_channel_dynamic_qconfig

    path = Path(checkpoint)
    state = _mapped_state_dict(path)
    expected = module.state_dict(keep_vars=True)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        what = f"lacks {len(missing)} weights (first: {', '.join(missing[:3])})" if missing else ""
        extra = f"has {len(unexpected)} unknown (first: {', '.join(unexpected[:3])})"
        raise InputError(
            f"{path}: {what or extra}; it was saved from a different model than config.yaml"
        )
    for key, want in expected.items():
        if tuple(state[key].shape) != tuple(want.shape):
            raise InputError(
                f"{path}: {key} has shape {tuple(state[key].shape)}, config.yaml asks for "
                f"{tuple(want.shape)}"
            )
    release = _PageRelease(path)
    linears = {name for name, m in module.named_modules() if type(m) is nn.Linear}
    with torch.no_grad():
        for name in sorted(linears):
            parent, _, leaf = name.rpartition(".")
            owner = module.get_submodule(parent) if parent else module
            old = owner.get_submodule(leaf)
            weight = state.pop(f"{name}.weight")
            bias = state.pop(f"{name}.bias", None)
            fp32 = nn.Linear(
                old.in_features, old.out_features, bias=bias is not None, device="meta"
            )
            fp32.weight = nn.Parameter(weight.float(), requires_grad=False)
            if bias is not None:
                fp32.bias = nn.Parameter(bias.float().clone(), requires_grad=False)
            fp32.qconfig = per_channel_dynamic_qconfig
            setattr(owner, leaf, QLinear.from_float(fp32))
            release(weight)
            del fp32, weight
        for key, tensor in list(state.items()):
            _assign(module, key, tensor.clone())
            release(tensor)
            del state[key]
    on_meta = [n for n, t in _tensors(module) if t.is_meta]
    if on_meta:
        raise InputError(f"{path}: no values for {', '.join(on_meta[:3])}")


def _mapped_state_dict(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError:  # a legacy (non-zip) checkpoint cannot be mapped: read it whole
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: cannot read the checkpoint: {exc}") from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise InputError(f"{path}: not a state dict checkpoint")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _assign(module: Any, key: str, tensor: Any) -> None:
    from torch import nn

    parent, _, leaf = key.rpartition(".")
    owner = module.get_submodule(parent) if parent else module
    if leaf in owner._parameters:
        owner._parameters[leaf] = nn.Parameter(tensor, requires_grad=False)
    else:
        owner._buffers[leaf] = tensor


def _tensors(module: Any) -> Iterator[tuple[str, Any]]:
    yield from module.named_parameters()
    yield from module.named_buffers()


class _PageRelease:
    """Drop a converted tensor's pages of the mapped checkpoint from this process's RSS.

    Only whole pages inside a private mapping of the checkpoint file are released. Nothing
    writes to the loaded checkpoint tensors, so ``MADV_DONTNEED`` loses nothing: a page is
    re-read from the file if touched again. Memory that is not the file's is never touched.
    """

    def __init__(self, path: Path) -> None:
        self._ranges: list[tuple[int, int]] = []
        self._madvise: Any = None
        try:
            real = str(path.resolve())
            with open("/proc/self/maps", encoding="utf-8") as fh:
                for line in fh:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[5].strip() == real and fields[1][3] == "p":
                        lo, hi = (int(x, 16) for x in fields[0].split("-"))
                        self._ranges.append((lo, hi))
            if self._ranges:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                self._madvise = libc.madvise
        except (OSError, ValueError, AttributeError):  # not Linux: keep the pages
            self._ranges = []

    def __call__(self, tensor: Any) -> None:
        if self._madvise is None or tensor.device.type != "cpu" or not tensor.is_contiguous():
            return
        page = mmap.PAGESIZE
        start = tensor.data_ptr()
        end = start + tensor.numel() * tensor.element_size()
        lo = -(-start // page) * page
        hi = end // page * page
        if hi <= lo or not any(a <= lo and hi <= b for a, b in self._ranges):
            return
        self._madvise(lo, hi - lo, _MADV_DONTNEED)


_registered = False


def _register() -> None:
    """Make the int8 class known to funasr's registry (once per process)."""
    global _registered
    if _registered:
        return
    import torch
    from funasr.models.sense_voice.model import SenseVoiceSmall
    from funasr.register import tables

    @tables.register("model_classes", INT8_MODEL_NAME)
    class SenseVoiceSmallInt8(SenseVoiceSmall):  # type: ignore[misc,valid-type]
        """SenseVoiceSmall built on ``meta`` and filled with int8 Linears from a checkpoint."""

        def __init__(self, *args: Any, callsense_checkpoint: str, **kwargs: Any) -> None:
            with torch.device("meta"):
                super().__init__(*args, **kwargs)
            load_int8_model(self, callsense_checkpoint)

    _registered = True
