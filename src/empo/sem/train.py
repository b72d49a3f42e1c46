"""``empo sem train``: the 32-way ED emotion classifier.

Two modes, both selected on the valid split:

- ``head`` (the default, a few minutes on 2 CPU cores): the encoder stays frozen; its mean-pooled vectors of the
  train situations (and, with ``augment``, of their ``aug_text`` paraphrases) are computed once and cached under
  ``$EMPO_CACHE_DIR/sem/embeddings``; an L2-regularised softmax regression is fitted on them (full-batch L-BFGS),
  the L2 strength chosen on valid.
- ``finetune``: starts from that linear probe (LP-FT: a fitted head keeps the first steps from wrecking the
  encoder), then trains encoder + head with AdamW for ``epochs`` epochs, each example shown as its text or its
  paraphrase at random; the epoch with the best valid accuracy is kept. About 10 minutes per epoch on 2 idle
  CPU cores with MiniLM, seconds on a GPU.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from empo.config import Section
from empo.log import get_logger, progress

if TYPE_CHECKING:
    import torch

    from empo.sem.model import EmotionClassifier

log = get_logger(__name__)


class SemTrainConfig(Section):
    """How to train the emotion classifier (``empo sem train`` flags; ``--set KEY=VALUE`` sets any field by name)."""

    encoder: str = Field(
        "minilm", description="encoder: 'minilm' (offline all-MiniLM-L6-v2), a folder or a hub name"
    )
    mode: Literal["head", "finetune"] = "head"
    data: str | None = Field(None, description="the ed_situations folder; default <data root>/ed_situations")
    augment: bool = Field(True, description="also train on the aug_text paraphrases")
    max_length: int = Field(128, ge=8)
    seed: int = 0
    device: str = "auto"
    # Linear probe (both modes).
    l2_grid: list[float] = Field(default_factory=lambda: [1e-3, 3e-3, 1e-2, 3e-2])
    probe_max_iter: int = Field(300, ge=1)
    # Fine-tuning.
    epochs: int = Field(3, ge=1)
    lr: float = 5e-5
    head_lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = Field(32, ge=1)
    warmup_ratio: float = Field(0.06, ge=0.0, le=1.0)
    label_smoothing: float = Field(0.1, ge=0.0, lt=1.0)
    max_train: int | None = Field(None, description="use only the first N train situations (smoke tests)")


def _seed_all(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _encoder_fingerprint(spec: str) -> str:
    """Identifies an encoder's weights: the resolved path or name, plus its weight files' sizes and mtimes."""
    from empo.sem.model import resolve_encoder

    source = resolve_encoder(spec)
    parts = [source]
    path = Path(source)
    if path.is_dir():
        for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            st = f.stat()
            parts.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
    return "|".join(parts)


def cached_embeddings(clf: EmotionClassifier, texts: list[str], spec: str, what: str) -> torch.Tensor:
    """Frozen-encoder vectors of ``texts``, computed once per (encoder weights, max length, texts)."""
    import torch

    from empo.paths import cache_dir

    h = hashlib.sha256()
    h.update(_encoder_fingerprint(spec).encode())
    h.update(f"|{clf.max_length}|mean|".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\0")
    path = cache_dir("sem", "embeddings") / f"{h.hexdigest()[:24]}.pt"
    if path.is_file():
        emb = torch.load(path)
        if emb.shape[0] == len(texts):
            log.info("reusing cached embeddings of %s (%d texts) from %s", what, len(texts), path)
            return emb
    t0 = time.perf_counter()
    emb = clf.embed(texts, batch_size=64, progress=f"embedding {what}")
    log.info("embedded %s: %d texts in %.0f s", what, len(texts), time.perf_counter() - t0)
    tmp = path.with_suffix(".tmp")
    torch.save(emb, tmp)
    tmp.rename(path)
    return emb


def fit_softmax_regression(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    l2: float,
    max_iter: int = 300,
) -> torch.nn.Linear:
    """Multinomial logistic regression on standardised features by full-batch L-BFGS.

    The standardisation is folded into the returned layer, so it applies to raw pooled vectors.
    """
    import torch

    mean = x.mean(0)
    std = x.std(0).clamp(min=1e-6)
    z = (x - mean) / std
    lin = torch.nn.Linear(x.shape[1], n_classes)
    torch.nn.init.zeros_(lin.weight)
    torch.nn.init.zeros_(lin.bias)
    opt = torch.optim.LBFGS(
        lin.parameters(), lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(z), y) + 0.5 * l2 * lin.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    out = torch.nn.Linear(x.shape[1], n_classes)
    with torch.no_grad():
        out.weight.copy_(lin.weight / std)
        out.bias.copy_(lin.bias - (lin.weight / std) @ mean)
    return out


def _probe(cfg: SemTrainConfig, clf: EmotionClassifier, train, valid) -> dict[str, Any]:
    """Fit the linear head on frozen vectors; choose the L2 strength on valid; install the head in ``clf``."""
    import torch

    from empo.sem.metrics import classification_metrics

    texts = list(train.texts)
    labels = list(train.labels)
    x = cached_embeddings(clf, texts, cfg.encoder, "train situations")
    if cfg.augment:
        xa = cached_embeddings(clf, list(train.aug_texts), cfg.encoder, "train paraphrases")
        x = torch.cat([x, xa])
        labels = labels + labels
    y = torch.tensor(labels)
    xv = cached_embeddings(clf, list(valid.texts), cfg.encoder, "valid situations")
    best: tuple[float, float, torch.nn.Linear] | None = None
    grid = []
    for l2 in cfg.l2_grid:
        t0 = time.perf_counter()
        head = fit_softmax_regression(x, y, len(clf.labels), l2, cfg.probe_max_iter)
        with torch.no_grad():
            probs = head(xv).softmax(-1).numpy()
        m = classification_metrics(probs, valid.labels)
        grid.append({"l2": l2, **m})
        log.info(
            "probe l2=%g: valid top1 %.3f top3 %.3f macro-F1 %.3f (%.1f s)",
            l2,
            m["top1"],
            m["top3"],
            m["macro_f1"],
            time.perf_counter() - t0,
        )
        if best is None or m["top1"] > best[0]:
            best = (m["top1"], l2, head)
    assert best is not None
    clf.head = best[2].to(clf.device)
    return {"probe_grid": grid, "probe_l2": best[1], "probe_valid_top1": best[0]}


def _valid_probs(clf: EmotionClassifier, texts: list[str]):
    return clf.predict_proba(texts, batch_size=128)


def _finetune(cfg: SemTrainConfig, clf: EmotionClassifier, train, valid) -> dict[str, Any]:
    """Fine-tune encoder + head; keep the epoch with the best valid top-1 (the probe counts as epoch 0)."""
    import copy

    import torch
    from transformers import get_linear_schedule_with_warmup

    from empo.sem.metrics import classification_metrics

    rng = random.Random(cfg.seed)
    n = len(train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    opt = torch.optim.AdamW(
        [
            {"params": clf.encoder.parameters(), "lr": cfg.lr},
            {"params": clf.head.parameters(), "lr": cfg.head_lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    m0 = classification_metrics(_valid_probs(clf, list(valid.texts)), valid.labels)
    best = {"epoch": 0, **m0}
    best_state = (copy.deepcopy(clf.encoder.state_dict()), copy.deepcopy(clf.head.state_dict()))
    history = [{"epoch": 0, **m0}]
    log.info(
        "fine-tuning: %d epochs x %d steps (batch %d); valid top1 before: %.3f",
        cfg.epochs,
        steps_per_epoch,
        cfg.batch_size,
        m0["top1"],
    )
    step = 0
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        clf.encoder.train()
        order = list(range(n))
        rng.shuffle(order)
        running = 0.0
        with progress() as bar:
            task = bar.add_task(f"epoch {epoch}/{cfg.epochs}", total=steps_per_epoch, rate="")
            for b in range(steps_per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                texts = [
                    train.aug_texts[i] if cfg.augment and rng.random() < 0.5 else train.texts[i] for i in idx
                ]
                y = torch.tensor([train.labels[i] for i in idx], device=clf.device)
                loss = loss_fn(clf.head(clf.encode_batch(texts)), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(clf.encoder.parameters(), 1.0)
                opt.step()
                sched.step()
                step += 1
                running = 0.98 * running + 0.02 * loss.item() if b else loss.item()
                bar.update(task, advance=1, rate=f"loss {running:.3f}")
                if step % 100 == 0:
                    log.debug(
                        "step %d/%d loss %.4f (%.0f s)", step, total, running, time.perf_counter() - t_start
                    )
        clf.encoder.eval()
        m = classification_metrics(_valid_probs(clf, list(valid.texts)), valid.labels)
        history.append({"epoch": epoch, "train_loss": running, **m})
        log.info(
            "epoch %d: train loss %.3f, valid top1 %.3f top3 %.3f macro-F1 %.3f (%.0f s so far)",
            epoch,
            running,
            m["top1"],
            m["top3"],
            m["macro_f1"],
            time.perf_counter() - t_start,
        )
        if m["top1"] > best["top1"]:
            best = {"epoch": epoch, **m}
            best_state = (copy.deepcopy(clf.encoder.state_dict()), copy.deepcopy(clf.head.state_dict()))
    clf.encoder.load_state_dict(best_state[0])
    clf.head.load_state_dict(best_state[1])
    clf.encoder.eval()
    return {
        "finetune_history": history,
        "finetune_best_epoch": best["epoch"],
        "finetune_seconds": time.perf_counter() - t_start,
    }


def _absolute_if_local(spec: str) -> str:
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.is_dir() else spec


def fit_classifier(cfg: SemTrainConfig) -> tuple[EmotionClassifier, dict[str, Any]]:
    """Train a classifier in memory (no files written except the embedding cache); return it and its log."""
    import torch

    from empo.sem.data import load_label_names, load_situations, situations_dir
    from empo.sem.metrics import classification_metrics
    from empo.sem.model import EmotionClassifier, load_encoder

    _seed_all(cfg.seed)
    t0 = time.perf_counter()
    labels = load_label_names(cfg.data)
    train = load_situations("train", cfg.data)
    valid = load_situations("valid", cfg.data)
    if cfg.max_train is not None:
        from empo.sem.data import Situations

        k = cfg.max_train
        train = Situations("train", train.texts[:k], train.aug_texts[:k], train.labels[:k])
    tok, encoder = load_encoder(cfg.encoder)
    encoder.eval()
    dim = int(getattr(encoder.config, "hidden_size", 0)) or int(
        encoder.get_input_embeddings().weight.shape[1]
    )
    clf = EmotionClassifier(
        tok,
        encoder,
        torch.nn.Linear(dim, len(labels)),
        labels,
        max_length=cfg.max_length,
        # A local encoder folder is recorded absolute: the classifier then loads from any working directory.
        config={"encoder": _absolute_if_local(cfg.encoder), "mode": cfg.mode},
        device=cfg.device,
    )
    info: dict[str, Any] = {
        "data": str(situations_dir(cfg.data)),
        "n_train": len(train),
        "n_valid": len(valid),
        "train_config": cfg.model_dump(mode="json"),
    }
    info.update(_probe(cfg, clf, train, valid))
    if cfg.mode == "finetune":
        info.update(_finetune(cfg, clf, train, valid))
    info["valid"] = classification_metrics(_valid_probs(clf, list(valid.texts)), valid.labels)
    info["train_seconds"] = time.perf_counter() - t0
    log.info(
        "trained (%s) in %.0f s: valid top1 %.3f top3 %.3f macro-F1 %.3f",
        cfg.mode,
        info["train_seconds"],
        info["valid"]["top1"],
        info["valid"]["top3"],
        info["valid"]["macro_f1"],
    )
    return clf, info


def save_classifier_run(
    clf: EmotionClassifier,
    cfg: SemTrainConfig,
    info: dict[str, Any],
    metrics: dict[str, Any],
    out: Path | str,
    *,
    overwrite: bool = False,
) -> None:
    """Write a trained classifier folder atomically: weights, config, training log, metrics and the card."""
    from empo.io import atomic_dir, git_sha, versions, write_json
    from empo.sem.card import write_card

    with atomic_dir(Path(out).expanduser(), overwrite=overwrite) as tmp:
        clf.save(tmp, save_encoder=cfg.mode == "finetune")
        write_json(tmp / "train_config.json", cfg.model_dump(mode="json"))
        write_json(
            tmp / "train_log.json",
            {**info, "versions": versions("torch", "transformers"), "git_sha": git_sha()},
        )
        write_json(tmp / "metrics.json", metrics)
        write_card(tmp, cfg, info, metrics)


def train_classifier(
    cfg: SemTrainConfig, out: Path | str, *, overwrite: bool = False, evaluate: bool = True
) -> dict[str, Any]:
    """Train, evaluate on the test data, and save into ``out`` with its card. Returns the metrics."""
    from empo.errors import EmpoError

    out = Path(out).expanduser()
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise EmpoError(f"{out} already exists; pass --overwrite to replace it")
    clf, info = fit_classifier(cfg)
    metrics: dict[str, Any] = {"valid": info["valid"]}
    if evaluate:
        from empo.sem.evaluate import evaluate_loaded

        metrics.update(evaluate_loaded(clf, data=cfg.data))
    save_classifier_run(clf, cfg, info, metrics, out, overwrite=True)
    log.info("saved the emotion classifier to %s", out)
    return metrics
