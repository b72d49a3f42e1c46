"""``empo build-prefs``: a thin Typer wrapper over :func:`empo.prefs.build.build_prefs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from empo.cli import guarded


@guarded
def build_prefs_command(
    out: Path = typer.Option(
        ...,
        "--out",
        "-o",
        help="Output folder: {train,valid,test}.parquet and stats.json (written atomically).",
    ),
    data_dir: str | None = typer.Option(
        None,
        "--data-dir",
        help="EmpatheticDialogues folder (train/valid/test.csv, the raw release) or empatheticdialogues.tar.gz; "
        "`sample` for the embedded sample [default: $EMPO_DATA_DIR/empatheticdialogues, else the sample].",
    ),
    strategy: str | None = typer.Option(
        None,
        "--strategy",
        "-s",
        help="How rejected responses are chosen: opposite | distance | hard [default: opposite].",
    ),
    pairs_per_dialogue: int | None = typer.Option(
        None, "--pairs-per-dialogue", "-k", min=1, help="Rejected responses per cut point [default: 3]."
    ),
    seed: int | None = typer.Option(None, "--seed", min=0, help="Random seed [default: 0]."),
    fmt: str | None = typer.Option(
        None, "--format", help="dpo (prompt/chosen/rejected) or kto (prompt/completion/label) [default: dpo]."
    ),
    cuts: str | None = typer.Option(
        None, "--cuts", help="last: the last listener turn (EmPO); all: every listener turn [default: last]."
    ),
    system_prompt: str | None = typer.Option(
        None, "--system-prompt", help='System message [default: the one `empo generate` uses; "" for none].'
    ),
    max_context_turns: int | None = typer.Option(
        None, "--max-context-turns", min=1, help="Keep only the last N turns before the cut [default: all]."
    ),
    max_length_percentile: float | None = typer.Option(
        None,
        "--max-length-percentile",
        help="Drop pairs longer than this percentile of the train pairs (EmPO: 95) [default: no filter].",
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="Drop pairs longer than this many tokens [default: no limit]."
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Model spec whose tokenizer measures lengths for the filters (e.g. smollm2-135m) [default: words].",
    ),
    recipe: Path | None = typer.Option(None, "--recipe", help="Recipe YAML (section `prefs`)."),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Override a recipe key, e.g. --set prefs.hard_top_k=4 (repeatable)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
) -> None:
    """Build emotion-grounded preference pairs from EmpatheticDialogues (EmPO's recipe, and harder ones).

    For each dialogue the prompt is the conversation up to a listener turn (the last one by default), the CHOSEN
    response is that real listener turn, and the REJECTED response is a listener turn from another dialogue of
    the SAME split, chosen by the strategy: `opposite` (a dialogue of an opposite emotion, EmPO), `distance`
    (emotion drawn with probability growing with valence/arousal distance) or `hard` (the most on-topic
    response among distant emotions). Same input and seed give byte-identical files.

    Writes OUT/train.parquet, OUT/valid.parquet, OUT/test.parquet in TRL's conversational format
    (`prompt`, `chosen`, `rejected` + `conv_id`, `emotion`, `rejected_emotion`, `strategy`; or with --format kto
    `prompt`, `completion`, `label`) and OUT/stats.json, and prints a summary.

    Example: `empo build-prefs --data-dir ../shared/data/empatheticdialogues --out runs/prefs --strategy hard`
    """
    from empo.prefs.build import build_prefs
    from empo.recipe import load_recipe

    r = load_recipe(
        recipe,
        overrides,
        {
            "prefs.data_dir": data_dir,
            "prefs.strategy": strategy,
            "prefs.pairs_per_dialogue": pairs_per_dialogue,
            "prefs.seed": seed,
            "prefs.format": fmt,
            "prefs.cuts": cuts,
            "prefs.system_prompt": system_prompt,
            "prefs.max_context_turns": max_context_turns,
            "prefs.max_length_percentile": max_length_percentile,
            "prefs.max_tokens": max_tokens,
            "prefs.tokenizer": tokenizer,
        },
    )
    stats = build_prefs(r.prefs, out, overwrite=overwrite)
    print_summary(stats)


def print_summary(stats: dict[str, Any]) -> None:
    """Two rich tables: per split (counts, lengths), then pairs per emotion and split."""
    from rich.table import Table

    from empo.data.ed import EMOTIONS
    from empo.log import console

    splits = stats["splits"]
    t = Table(title=f"build-prefs: strategy {stats['strategy']}, format {stats['format']}")
    for name in ("split", "dialogues", "cuts", "pairs", "rows", "skipped rows", "no pair", "too long"):
        t.add_column(name, justify="left" if name == "split" else "right")
    t.add_column("mean words: prompt / chosen / rejected", justify="right")
    for split, s in splits.items():
        lw = s["lengths_words"]
        t.add_row(
            split,
            str(s["dialogues"]),
            str(s["cuts"]),
            str(s["pairs"]),
            str(s["rows"]),
            str(s["load"]["skipped_rows"]),
            str(s["cuts_without_pair"]),
            str(s["dropped_by_length"]),
            " / ".join(f"{lw[k]['mean']:.1f}" for k in ("prompt", "chosen", "rejected")),
        )
    console.print(t)

    e = Table(title="pairs per emotion (chosen side)")
    e.add_column("emotion")
    for split in splits:
        e.add_column(split, justify="right")
    first_split = "train" if "train" in splits else next(iter(splits))
    e.add_column(f"as rejected ({first_split})", justify="right")
    for emo in EMOTIONS:
        e.add_row(
            emo,
            *(str(s["per_emotion"][emo]) for s in splits.values()),
            str(splits[first_split]["per_rejected_emotion"][emo]),
        )
    console.print(e)
