"""The classifier's card (``README.md`` in its folder): data, encoder, training, scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from empo.sem.train import SemTrainConfig


def _row(name: str, m: dict[str, Any]) -> str:
    return f"| {name} | {m['n']} | {m['top1']:.3f} | {m['top3']:.3f} | {m['macro_f1']:.3f} |"


def write_card(out: Path, cfg: SemTrainConfig, info: dict[str, Any], metrics: dict[str, Any]) -> None:
    """Write ``out/README.md``."""
    from empo.sem.evaluate import ED_DIALOGUE_ANCHOR

    how = (
        "frozen encoder (mean pooling) + linear softmax head fitted by L-BFGS, L2 chosen on valid "
        f"(l2={info.get('probe_l2')})"
        if cfg.mode == "head"
        else (
            f"linear probe, then encoder + head fine-tuned {cfg.epochs} epoch(s) (AdamW lr {cfg.lr:g}, head lr "
            f"{cfg.head_lr:g}, batch {cfg.batch_size}, label smoothing {cfg.label_smoothing:g}); best valid epoch: "
            f"{info.get('finetune_best_epoch')}"
        )
    )
    lines = [
        "# empo emotion classifier (HEF plug-in)",
        "",
        "A 32-way EmpatheticDialogues emotion classifier, written by `empo sem train`.",
        "",
        f"- Data: `{info['data']}` (ED situations, dinobby/HypEmo's copy, CC BY-NC 4.0): "
        f"{info['n_train']} train situations{' + their aug_text paraphrases' if cfg.augment else ''}, "
        f"{info['n_valid']} valid (model selection).",
        f"- Encoder: `{cfg.encoder}`; max length {cfg.max_length} tokens.",
        f"- Training: {how}; seed {cfg.seed}; {info['train_seconds']:.0f} s.",
        "",
        "| set | n | top-1 | top-3 | macro-F1 |",
        "|---|---|---|---|---|",
    ]
    for name, m in metrics.items():
        if isinstance(m, dict) and "top1" in m:
            lines.append(_row(name, m))
    lo, hi = ED_DIALOGUE_ANCHOR
    lines += [
        "",
        f"Anchor: dialogue models built for ED (MoEL, CEM, CASE) predict the emotion from the dialogue context with "
        f"about {lo:.2f}-{hi:.2f} accuracy.",
        "",
        "Load it with `empo.sem.model.load_classifier(DIR)`; use it in generation with "
        "`empo generate --plugin hef`.",
        "",
    ]
    (Path(out) / "README.md").write_text("\n".join(lines), encoding="utf-8")
