"""``empo sem evaluate``: top-1/top-3 accuracy and macro-F1 on the ED situations test split and on the ED
test dialogues (their first user turn, and all user turns before the last listener turn), gold = the
dialogue's emotion label."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import DataError, EmpoError
from empo.log import get_logger

if TYPE_CHECKING:
    from empo.sem.model import ProbClassifier

log = get_logger(__name__)

# What the dialogue models built for ED predict from the dialogue context (MoEL, CEM, CASE report ~0.38-0.41).
ED_DIALOGUE_ANCHOR = (0.38, 0.41)


def dialogue_views(split: str = "test", source: Path | str | None = None) -> dict[str, Any]:
    """The ED dialogues of ``split`` as classifier inputs: ``first_turn`` (the first user turn), ``user_turns``
    (every user turn before the last listener turn, joined) and ``emotions`` (gold labels)."""
    from empo.data.chat import listener_indices
    from empo.data.ed import load_ed

    dialogues = load_ed(source, splits=(split,))[split]
    first, context, emotions = [], [], []
    for d in dialogues:
        cuts = listener_indices(d)
        if not cuts:
            continue
        users = [t.text for t in d.turns[: cuts[-1]] if t.role == "user"]
        first.append(users[0])
        context.append(" ".join(users))
        emotions.append(d.emotion)
    return {"first_turn": first, "user_turns": context, "emotions": emotions}


def _score(clf: ProbClassifier, texts: list[str], gold_names: list[str], what: str) -> dict[str, Any]:
    from empo.sem.metrics import classification_metrics

    index = {name: i for i, name in enumerate(clf.labels)}
    keep = [i for i, g in enumerate(gold_names) if g in index]
    if len(keep) < len(gold_names):
        log.warning(
            "%s: %d of %d items have an emotion the classifier does not know; skipped",
            what,
            len(gold_names) - len(keep),
            len(gold_names),
        )
    t0 = time.perf_counter()
    probs = clf.predict_proba([texts[i] for i in keep])
    m = classification_metrics(probs, [index[gold_names[i]] for i in keep])
    m["seconds"] = round(time.perf_counter() - t0, 2)
    return m


def evaluate_loaded(
    clf: ProbClassifier,
    data: Path | str | None = None,
    dialogues: Path | str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Score a loaded classifier. ``data``: the ed_situations folder; ``dialogues``: the ED folder (both default
    to the data root). The dialogue part is skipped with a warning when the ED data cannot be read."""
    from empo.sem.data import load_label_names, load_situations

    sits = load_situations(split, data)
    names = load_label_names(data)
    out: dict[str, Any] = {
        f"situations_{split}": _score(clf, sits.texts, [names[i] for i in sits.labels], "situations")
    }
    try:
        views = dialogue_views(split, dialogues)
    except (DataError, ImportError, FileNotFoundError) as exc:
        log.warning("skipping the dialogue evaluation: %s", exc)
        return out
    out[f"dialogues_{split}_first_turn"] = _score(clf, views["first_turn"], views["emotions"], "dialogues")
    out[f"dialogues_{split}_user_turns"] = _score(clf, views["user_turns"], views["emotions"], "dialogues")
    return out


def evaluate_classifier(
    path: Path | str,
    data: Path | str | None = None,
    dialogues: Path | str | None = None,
    split: str = "test",
    device: str = "auto",
) -> dict[str, Any]:
    """Load the classifier folder ``path`` and score it (see :func:`evaluate_loaded`)."""
    from empo.sem.model import load_classifier

    if split not in ("valid", "test"):
        raise EmpoError(f"--split must be valid or test, not {split!r}")
    return evaluate_loaded(load_classifier(path, device=device), data=data, dialogues=dialogues, split=split)


def format_report(metrics: dict[str, Any]) -> str:
    """A small fixed-width table of the scores, plus the margin over the ED dialogue-model anchor."""
    lines = [f"{'set':<32} {'n':>6} {'top-1':>7} {'top-3':>7} {'macro-F1':>9}"]
    for name, m in metrics.items():
        if isinstance(m, dict) and "top1" in m:
            lines.append(f"{name:<32} {m['n']:>6} {m['top1']:>7.3f} {m['top3']:>7.3f} {m['macro_f1']:>9.3f}")
    lo, hi = ED_DIALOGUE_ANCHOR
    for key in ("dialogues_test_user_turns", "dialogues_test_first_turn"):
        if key in metrics:
            acc = metrics[key]["top1"]
            lines.append(
                f"anchor: MoEL/CEM/CASE predict the emotion from the dialogue context with {lo:.2f}-{hi:.2f} "
                f"accuracy; {key}: {acc:.3f} ({acc - hi:+.3f} vs {hi:.2f})"
            )
    return "\n".join(lines)
