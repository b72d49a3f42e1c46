"""``empo identifiers train`` and ``empo identifiers evaluate`` (thin wrappers; heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer

from empo.cli import guarded

app = typer.Typer(
    help=(
        "Empathy identifiers: EPITOME's emotional reactions (ER), interpretations (IP) and explorations (EX), "
        "each scored 0 (none), 1 (weak) or 2 (strong) for a response to a seeker's post. `train` fits them on "
        "EPITOME (empo_splits/train.csv, epoch chosen on val.csv) from the offline MiniLM encoder or any HF "
        "encoder; `evaluate` prints accuracy and macro-F1 per mechanism on the 302 test pairs. Other commands "
        "(eval, RL rewards) find them in $EMPO_CACHE_DIR/identifiers/default and train them there on first need."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)


@app.command("train")
@guarded
def train_command(
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Folder to write (default: $EMPO_CACHE_DIR/identifiers/default)."
    ),
    encoder: str | None = typer.Option(
        None,
        "--encoder",
        help="`minilm` (offline all-MiniLM-L6-v2, the default), or any HF encoder name or folder.",
    ),
    recipe: Path | None = typer.Option(
        None, "--recipe", help="Recipe YAML; its `identifiers` section is used."
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a setting, e.g. `--set identifiers.epochs=3` (repeatable)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", help="Maximum epochs per network."),
    seeds: str | None = typer.Option(
        None, "--seeds", help="Comma-separated seeds; several make an ensemble."
    ),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
    train_csv: Path | None = typer.Option(
        None, "--train", help="Training CSV (default: empo_splits/train.csv)."
    ),
    val_csv: Path | None = typer.Option(None, "--val", help="Validation CSV for model selection."),
    test_csv: Path | None = typer.Option(None, "--test", help="Test CSV scored once for the card."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing identifiers folder."),
) -> None:
    """Train the three empathy identifiers and write them (weights, encoder reference, card.md/card.json)."""
    from empo.identifiers import default_identifiers_dir
    from empo.identifiers.card import scores_table
    from empo.identifiers.metrics import ANCHOR_ACCURACY
    from empo.identifiers.train import train_identifiers
    from empo.log import console
    from empo.recipe import load_recipe

    seed_list = None
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            from empo.errors import EmpoError

            raise EmpoError(f"--seeds {seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    rec = load_recipe(
        recipe,
        overrides,
        {
            "identifiers.encoder": encoder,
            "identifiers.epochs": epochs,
            "identifiers.seeds": seed_list,
            "identifiers.device": device,
            "identifiers.train_csv": str(train_csv) if train_csv else None,
            "identifiers.val_csv": str(val_csv) if val_csv else None,
            "identifiers.test_csv": str(test_csv) if test_csv else None,
        },
    )
    folder = out if out is not None else default_identifiers_dir()
    card = train_identifiers(rec.identifiers, folder, overwrite=overwrite)
    console.print(f"[bold]empathy identifiers[/] written to {folder} ({card['train_seconds'] / 60:.1f} min)")
    if card.get("test_scores"):
        console.print(scores_table(card["test_scores"], ANCHOR_ACCURACY), markup=False, highlight=False)


@app.command("evaluate")
@guarded
def evaluate_command(
    folder: Path | None = typer.Argument(
        None, help="Identifiers folder (default: $EMPO_CACHE_DIR/identifiers/default)."
    ),
    data: Path | None = typer.Option(
        None, "--data", help="EPITOME CSV to score (default: empo_splits/test.csv)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the scores as JSON to this file."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
) -> None:
    """Print accuracy and macro-F1 per mechanism (vs the RoBERTa-base anchor) on an EPITOME CSV."""
    from empo.identifiers import load_identifiers
    from empo.identifiers.evaluate import evaluate_identifiers, scores_rich_table
    from empo.io import write_json
    from empo.log import console

    ident = load_identifiers(folder, train_if_missing=False, device=device)
    result = evaluate_identifiers(ident, data, batch_size=batch_size)
    # the table goes to stdout (the result); logs and progress go to stderr
    from rich.console import Console

    Console().print(scores_rich_table(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_out, result)
        console.print(f"scores written to {json_out}")
