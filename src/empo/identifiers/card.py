"""The identifiers' card (card.md): what they were trained on, how, and how well they do."""

from __future__ import annotations

from typing import Any

from empo.identifiers.data import MECHANISMS


def scores_table(scores: dict[str, Any], anchor: dict[str, float] | None = None) -> str:
    """A markdown table: mechanism, n, accuracy, macro-F1 (and the anchor's accuracy when given)."""
    head = "| mechanism | n | accuracy | macro-F1 | weighted F1 |" + (" anchor accuracy |" if anchor else "")
    sep = "|---|---|---|---|---|" + ("---|" if anchor else "")
    rows = [head, sep]
    for m in MECHANISMS:
        if m not in scores:
            continue
        s = scores[m]
        row = f"| {m} | {s['n']} | {s['accuracy']:.3f} | {s['macro_f1']:.3f} | {s['weighted_f1']:.3f} |"
        if anchor:
            row += f" {anchor.get(m, float('nan')):.3f} |"
        rows.append(row)
    return "\n".join(rows)


def render_card(card: dict[str, Any]) -> str:
    cfg = card["config"]
    lines = [
        "# Empathy identifiers (EPITOME: ER, IP, EX)",
        "",
        card["what"] + ".",
        "",
        f"- Date: {card['date']}; training took {card['train_seconds'] / 60:.1f} min on "
        f"{card['machine'].get('gpu') or card['machine']['processor']} "
        f"({card['machine']['cpu_count']} CPUs, {card['machine']['torch_threads']} torch threads"
        + (f", {card['train_cpu_seconds'] / 60:.1f} CPU-min" if card.get("train_cpu_seconds") else "")
        + (
            f", load average {card['machine']['load_average_1m']:.1f}"
            if "load_average_1m" in card["machine"]
            else ""
        )
        + ").",
        f"- Encoder: `{card['encoder']['reference']}` ({card['encoder']['path']}).",
        f"- Input: `{cfg['input']}` (seeker <= {cfg['max_seeker_tokens']} tokens, response <= "
        f"{cfg['max_response_tokens']} tokens), pooling `{cfg['pooling']}`, rationale loss weight "
        f"{cfg['rationale_weight']}, class weights `{cfg['class_weight']}`, "
        f"{'one model per mechanism' if cfg['separate'] else 'one multi-task encoder'}, seeds {cfg['seeds']}.",
        f"- Training: {cfg['epochs']} epochs max, batch {cfg['batch_size']}, lr {cfg['lr']} (heads {cfg['head_lr']}, "
        f"layer decay {cfg['layer_decay']}), warmup {cfg['warmup_ratio']}, weight decay {cfg['weight_decay']}, "
        f"epoch selected on validation `{cfg['select_metric']}`; calibration: {card['calibration'] or 'none'}.",
        "- Data: "
        + "; ".join(
            f"{k} `{v['path']}` ({v['rows']} rows, sha256 {v['sha256'][:12]})"
            for k, v in card["data"].items()
        ),
        "",
        "## Validation (model selection)",
        "",
        scores_table(card["val_scores"]),
        "",
    ]
    if card.get("test_scores"):
        lines += [
            "## Test (empo_splits/test.csv, evaluated once)",
            "",
            scores_table(card["test_scores"], card.get("anchor_accuracy")),
            "",
            "The anchor is the accuracy of RoBERTa-base adapters on the same 302 pairs.",
            "",
        ]
    lines += [
        "## Networks",
        "",
        "| mechanisms | seed | best epoch | val selection score | minutes |",
        "|---|---|---|---|---|",
        *(
            f"| {'+'.join(n['mechanisms'])} | {n['seed']} | {n['best_epoch']} | {n['best_val_select']:.4f} | "
            f"{n['seconds'] / 60:.1f} |"
            for n in card["networks"]
        ),
        "",
        "Versions: "
        + ", ".join(f"{k} {v}" for k, v in card["versions"].items())
        + (f"; git {card['git_sha'][:10]}" if card.get("git_sha") else "")
        + ".",
        "",
        "Data: EPITOME (Sharma et al., EMNLP 2020), academic non-commercial licence; the weights inherit it.",
        "",
    ]
    return "\n".join(lines)
