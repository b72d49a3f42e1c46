"""Train the EPITOME empathy identifiers (a plain PyTorch loop), select on validation, write the folder + card."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from empo.identifiers.config import IdentifiersConfig
from empo.identifiers.data import LEVELS, MECHANISMS, EpitomeData, default_split, read_epitome_csv
from empo.identifiers.metrics import ANCHOR_ACCURACY, score_all, selection_score
from empo.identifiers.model import (
    Arch,
    IdentifierNet,
    Identifiers,
    Member,
    collate,
    encode,
    fit_calibration,
    length_batches,
    resolve_device,
    resolve_encoder,
)
from empo.log import get_logger, progress

log = get_logger("identifiers")


@dataclass
class FitResult:
    """What :func:`fit` returns: the identifiers, per-network training history, validation scores, timings."""

    identifiers: Identifiers
    history: list[dict[str, Any]]
    val_scores: dict[str, Any]
    seconds: float
    encoder_path: str
    n_train: int
    n_val: int
    extra: dict[str, Any] = field(default_factory=dict)


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _train_batches(lengths: list[int], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of similar length: shuffle, sort within chunks of 50 batches, shuffle the batches.

    Similar lengths cut the padding (the dominant CPU cost) while the order stays random and seeded.
    """
    idx = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches: list[list[int]] = []
    for start in range(0, len(idx), chunk):
        part = sorted(idx[start : start + chunk].tolist(), key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _class_weights(y: np.ndarray, mode: str) -> torch.Tensor | None:
    if mode == "none":
        return None
    counts = np.bincount(y, minlength=len(LEVELS)).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    w = (counts.sum() / counts) if mode == "balanced" else np.sqrt(counts.sum() / counts)
    w = w / (w * counts).sum() * counts.sum()  # the mean weight over training examples is 1
    return torch.tensor(w, dtype=torch.float32)


def _param_groups(net: IdentifierNet, cfg: IdentifiersConfig) -> list[dict[str, Any]]:
    """Encoder parameters at ``lr`` (with layer-wise decay), new layers at ``head_lr``; no decay on biases/norms."""
    import re

    n_layers = int(getattr(net.encoder.config, "num_hidden_layers", 12))
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "norm" in name.lower()
        wd = 0.0 if no_decay else cfg.weight_decay
        if name.startswith("encoder."):
            m = re.search(r"\.layers?\.(\d+)\.", name)
            if m:
                depth = int(m.group(1)) + 1
            elif "embed" in name:
                depth = 0
            else:  # pooler and anything above the layers
                depth = n_layers
            lr = cfg.lr * cfg.layer_decay ** (n_layers - depth)
        else:
            lr = cfg.head_lr
        groups.setdefault((lr, wd), []).append(p)
    return [{"params": ps, "lr": lr, "weight_decay": wd, "initial_lr": lr} for (lr, wd), ps in groups.items()]


def _load_encoder(path: str) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "some weights were not used (pooler)" is expected noise here
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        encoder = AutoModel.from_pretrained(path, dtype=torch.float32)  # train in fp32 whatever was saved
    except OSError as exc:
        from empo.errors import EmpoError

        raise EmpoError(f"cannot load encoder {path!r}: {str(exc).splitlines()[0]}") from None
    if not getattr(tokenizer, "is_fast", False):
        from empo.errors import EmpoError

        raise EmpoError(f"encoder {path!r} has no fast tokenizer (needed for character offsets)")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return encoder, tokenizer


@torch.inference_mode()
def _net_probs(
    net: IdentifierNet,
    feats: list[dict[str, Any]],
    pad_id: int,
    device: torch.device,
    cache: dict[str, torch.Tensor] | None,
    batch_size: int = 64,
) -> np.ndarray:
    """Probabilities ``(n, mechanisms, 3)`` of one network."""
    net.eval()
    out = np.zeros((len(feats), len(net.mechanisms), len(LEVELS)), dtype=np.float64)
    for idx in length_batches([len(f["input_ids"]) for f in feats], batch_size):
        batch = {k: v.to(device) for k, v in collate([feats[i] for i in idx], pad_id, cache).items()}
        batch.pop("rationale_labels", None)
        logits, _ = net(**batch)
        out[idx] = torch.softmax(logits.float(), -1).cpu().numpy()
    return out


@torch.inference_mode()
def _seeker_cache(
    net: IdentifierNet,
    feats_list: list[list[dict[str, Any]]],
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """Frozen encodings of every distinct seeker post (input "bi"): computed once, reused every step."""
    seen: dict[str, list[int]] = {}
    for feats in feats_list:
        for f in feats:
            seen.setdefault(f["seeker_key"], f["seeker_ids"])
    keys = list(seen)
    cache: dict[str, torch.Tensor] = {}
    for idx in length_batches([len(seen[k]) for k in keys], batch_size):
        ids = [seen[keys[i]] for i in idx]
        width = max(len(x) for x in ids)
        t = torch.full((len(ids), width), pad_id, dtype=torch.long)
        m = torch.zeros((len(ids), width), dtype=torch.long)
        for r, x in enumerate(ids):
            t[r, : len(x)] = torch.tensor(x)
            m[r, : len(x)] = 1
        states = net.encode_seekers(t.to(device), m.to(device)).float().cpu()
        for r, i in enumerate(idx):
            cache[keys[i]] = states[r, : len(ids[r])].clone()
    return cache


def _train_network(
    cfg: IdentifiersConfig,
    encoder_path: str,
    mechanisms: list[str],
    seed: int,
    train: EpitomeData,
    val: EpitomeData,
    device: torch.device,
    prog: Any,
) -> tuple[IdentifierNet, Any, dict[str, Any]]:
    """Train one network on ``mechanisms``; return it at its best validation epoch, its tokenizer and history."""
    arch = Arch.from_config(cfg)
    _seed_everything(seed)
    encoder, tokenizer = _load_encoder(encoder_path)
    seeker = None
    if arch.input == "bi":
        seeker, _ = _load_encoder(encoder_path)
    net = IdentifierNet(encoder, mechanisms, arch, seeker).to(device)
    pad_id = tokenizer.pad_token_id

    use_rat = cfg.rationale_weight > 0 and all(m in train.rationales for m in mechanisms)
    train_feats = encode(
        tokenizer, arch, train.seekers, train.responses, train.rationales if use_rat else None, mechanisms
    )
    val_feats = encode(tokenizer, arch, val.seekers, val.responses)
    cache = _seeker_cache(net, [train_feats, val_feats], pad_id, device) if arch.input == "bi" else None

    y = torch.tensor(np.stack([train.levels[m] for m in mechanisms], 1))  # (n, M)
    weights = [_class_weights(train.levels[m], cfg.class_weight) for m in mechanisms]
    weights = [w.to(device) if w is not None else None for w in weights]

    groups = _param_groups(net, cfg)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999), eps=1e-8)
    lengths = [len(f["input_ids"]) for f in train_feats]
    steps_per_epoch = (len(train_feats) + cfg.batch_size - 1) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warm = round(cfg.warmup_ratio * total)

    def lr_factor(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        return max(0.0, (total - step) / max(1, total - warm))

    rng = np.random.default_rng(seed)
    history: list[dict[str, Any]] = []
    best_score, best_state, best_epoch, bad = -1.0, None, 0, 0
    bce = nn.BCEWithLogitsLoss(reduction="none")
    step = 0
    label = f"{'+'.join(mechanisms)} seed {seed}"
    task = prog.add_task(label, total=total, rate="")
    t_start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        t0 = time.perf_counter()
        seen, loss_sum, tokens = 0, 0.0, 0
        for idx in _train_batches(lengths, cfg.batch_size, rng):
            batch = collate([train_feats[i] for i in idx], pad_id, cache)
            batch = {k: v.to(device) for k, v in batch.items()}
            rat = batch.pop("rationale_labels", None)
            tokens += int(batch["input_ids"].numel())
            logits, tok = net(**batch)
            yb = y[idx].to(device)
            loss = sum(
                nn.functional.cross_entropy(logits[:, j], yb[:, j], weight=weights[j])
                for j in range(len(mechanisms))
            ) / len(mechanisms)
            if rat is not None:
                valid = (rat >= 0).float()
                rl = bce(tok, rat.clamp(min=0).float())
                loss = loss + cfg.rationale_weight * (rl * valid).sum() / valid.sum().clamp(min=1.0)
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * lr_factor(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            step += 1
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            rate = seen / max(1e-9, time.perf_counter() - t0)
            prog.update(
                task, advance=1, rate=f"ep {epoch}/{cfg.epochs} loss {loss_sum / seen:.3f} {rate:.0f} ex/s"
            )
        probs = _net_probs(net, val_feats, pad_id, device, cache)
        scores = score_all(
            {m: val.levels[m] for m in mechanisms},
            {m: probs[:, j].argmax(1) for j, m in enumerate(mechanisms)},
            tuple(mechanisms),
        )
        sel = selection_score(scores, cfg.select_metric, tuple(mechanisms))
        rec = {
            "epoch": epoch,
            "train_loss": loss_sum / max(1, seen),
            "val_select": sel,
            "seconds": time.perf_counter() - t0,
            "padded_tokens": tokens,
            **{f"val_{m}_acc": scores[m]["accuracy"] for m in mechanisms},
            **{f"val_{m}_f1": scores[m]["macro_f1"] for m in mechanisms},
        }
        history.append(rec)
        log.info(
            "%s epoch %d: loss %.3f, val %s, select %.4f (%.0f s)",
            label,
            epoch,
            rec["train_loss"],
            ", ".join(
                f"{m} acc {scores[m]['accuracy']:.3f} F1 {scores[m]['macro_f1']:.3f}" for m in mechanisms
            ),
            sel,
            rec["seconds"],
        )
        if sel > best_score + 1e-9:
            best_score, best_epoch, bad = sel, epoch, 0
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        else:
            bad += 1
            if cfg.patience is not None and bad >= cfg.patience:
                log.info("%s: no better validation score for %d epochs; stopping", label, bad)
                break
    prog.update(task, completed=total)
    net.load_state_dict(best_state)
    net.eval()
    info = {
        "mechanisms": mechanisms,
        "seed": seed,
        "best_epoch": best_epoch,
        "best_val_select": best_score,
        "seconds": time.perf_counter() - t_start,
        "epochs": history,
    }
    return net, tokenizer, info


def resolve_paths(cfg: IdentifiersConfig) -> tuple[Path, Path, Path]:
    return (
        Path(cfg.train_csv) if cfg.train_csv else default_split("train"),
        Path(cfg.val_csv) if cfg.val_csv else default_split("val"),
        Path(cfg.test_csv) if cfg.test_csv else default_split("test"),
    )


def fit(cfg: IdentifiersConfig) -> FitResult:
    """Train every network the config asks for (seeds x mechanism groups) and combine them; no files written."""
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    train_path, val_path, _ = resolve_paths(cfg)
    train = read_epitome_csv(train_path)
    val = read_epitome_csv(val_path)
    device = resolve_device(cfg.device)
    encoder_path = resolve_encoder(cfg.encoder)
    groups = [[m] for m in MECHANISMS] if cfg.separate else [list(MECHANISMS)]
    log.info(
        "training %d network(s) on %d pairs (%s), selecting on %d (%s); encoder %s; device %s, %d threads",
        len(groups) * len(cfg.seeds),
        len(train),
        train_path,
        len(val),
        val_path,
        encoder_path,
        device,
        torch.get_num_threads(),
    )
    members: list[Member] = []
    history: list[dict[str, Any]] = []
    tokenizer = None
    with progress() as prog:
        for seed in cfg.seeds:
            for mechs in groups:
                net, tokenizer, info = _train_network(
                    cfg, encoder_path, mechs, seed, train, val, device, prog
                )
                members.append(Member(net=net, mechanisms=mechs, seed=seed))
                history.append(info)
    ident = Identifiers(members, tokenizer, Arch.from_config(cfg), MECHANISMS)
    probs = ident.raw_probs(val.seekers, val.responses, batch_size=64)
    if cfg.calibrate:
        ident.calibration = {
            m: fit_calibration(probs[m], val.levels[m], cfg.select_metric) for m in MECHANISMS
        }
        log.info("calibration (log-prior shifts of levels 0/1/2): %s", ident.calibration)
    val_scores = score_all(val.levels, ident.predict(val.seekers, val.responses, batch_size=64))
    return FitResult(
        identifiers=ident,
        history=history,
        val_scores=val_scores,
        seconds=time.perf_counter() - t0,
        encoder_path=encoder_path,
        n_train=len(train),
        n_val=len(val),
    )


def evaluate_on(identifiers: Identifiers, path: Path, batch_size: int = 64) -> dict[str, Any]:
    """Scores of ``identifiers`` on an EPITOME CSV (accuracy, macro-F1, ... per mechanism)."""
    data = read_epitome_csv(path, tuple(identifiers.mechanisms))
    pred = identifiers.predict(data.seekers, data.responses, batch_size=batch_size)
    return score_all(data.levels, pred, tuple(identifiers.mechanisms))


def _machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):
        info["load_average_1m"] = os.getloadavg()[0]
    return info


def train_identifiers(cfg: IdentifiersConfig, out: Path, overwrite: bool = False) -> dict[str, Any]:
    """Train, evaluate once on the test split (when present), and write the identifiers folder with its card.

    Returns the card (a dict). The folder is written atomically: nothing half-written on failure.
    """
    from empo.identifiers.card import render_card
    from empo.io import atomic_dir, git_sha, sha256_file, versions, write_json

    out = Path(out)
    if out.exists() and out.is_dir() and not any(out.iterdir()):
        overwrite = True  # an empty folder (e.g. the default cache location) is no run to protect
    if out.exists() and not overwrite:
        from empo.errors import EmpoError

        raise EmpoError(f"{out} already exists; pass --overwrite to replace it")
    train_path, val_path, test_path = resolve_paths(cfg)
    for p in (train_path, val_path):
        read_epitome_csv(p)  # fail on bad data before anything heavy starts
    started = datetime.now(UTC)
    cpu0 = time.process_time()
    result = fit(cfg)
    ident = result.identifiers
    test_scores = None
    if test_path.is_file():
        test_scores = evaluate_on(ident, test_path)
    card: dict[str, Any] = {
        "what": "EPITOME empathy identifiers (ER emotional reactions, IP interpretations, EX explorations; "
        "levels 0 none, 1 weak, 2 strong)",
        "date": started.isoformat(timespec="seconds"),
        "train_seconds": round(result.seconds, 1),
        # CPU time of this process (all threads) for training: with a busy machine the wall time above
        # overstates the work, this does not (spin-waiting threads can inflate it a little).
        "train_cpu_seconds": round(time.process_time() - cpu0, 1),
        "machine": _machine(),
        "encoder": {"reference": cfg.encoder, "path": result.encoder_path},
        "data": {
            name: {"path": str(p), "sha256": sha256_file(p), "rows": n}
            for name, p, n in (
                ("train", train_path, result.n_train),
                ("val", val_path, result.n_val),
                *(
                    (("test", test_path, test_scores["ER"]["n"] if test_scores else 0),)
                    if test_scores
                    else ()
                ),
            )
        },
        "config": cfg.model_dump(mode="json"),
        "networks": [{k: v for k, v in h.items()} for h in result.history],
        "calibration": ident.calibration,
        "val_scores": result.val_scores,
        "test_scores": test_scores,
        "anchor_accuracy": ANCHOR_ACCURACY,
        "versions": versions("torch", "transformers", "tokenizers"),
        "git_sha": git_sha(),
    }
    with atomic_dir(out, overwrite=True) as tmp:
        ident.save(tmp, encoder_reference=result.encoder_path, extra={"encoder_name": cfg.encoder})
        write_json(tmp / "card.json", card)
        (tmp / "card.md").write_text(render_card(card), encoding="utf-8")
    ident.path = out
    log.info("wrote empathy identifiers to %s (%.1f min)", out, result.seconds / 60)
    return card
