"""The ``hef`` prompt plug-in for ``empo generate`` (HEF, arXiv 2402.11801).

A small emotion classifier reads the user's side of the dialogue context and the prompt tells the LLM
(1) its top-k emotions, to consider first before the others (HEF's two-stage emotion prediction), and
(2) the emotion-cause words found by occlusion over the classifier, to focus on (emotion-cause perception).
The hint is one extra paragraph of the system message (or, with ``where="user"``, a note before the last user
turn, for chat templates that have no system role); the rest of the prompt is unchanged, so it works with any
chat model and with aligned runs. What the plug-in found (top-k with probabilities, cause words) is returned as
metadata, which ``empo generate`` saves with each response under ``plugin``.

Interface (what ``empo.generate.plugins`` expects; registered there as ``hef``, with the recipe's
``generate.plugin_options`` as keyword arguments): ``setup(records)`` classifies every record's context (its
``context`` messages) in one batched call before generation; ``apply(messages, record) -> (messages, metadata)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from empo.log import get_logger
from empo.sem.model import ProbClassifier, top_k_of_row

log = get_logger(__name__)


def context_text(messages: Sequence[dict[str, str]]) -> str:
    """What the classifier reads: the user turns of the prompt, joined (system and assistant turns left out)."""
    return " ".join(" ".join(m["content"].split()) for m in messages if m.get("role") == "user").strip()


def hint_text(
    top: Sequence[tuple[str, float]],
    causes: Sequence[str],
    show_probs: bool = False,
) -> str:
    """The HEF paragraph: the emotions to consider first, then the cause words to focus on."""

    def fmt(label: str, p: float) -> str:
        return f"{label} ({p:.0%})" if show_probs else label

    names = [fmt(lab, p) for lab, p in top]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    parts = []
    if listed:
        parts.append(
            f"Emotion hint from a small emotion classifier (it can be wrong): the user most likely feels {listed}. "
            "Consider these emotions first, then the others, to decide how the user feels."
        )
    if causes:
        quoted = ", ".join(f'"{w}"' for w in causes)
        parts.append(
            f"Words that show what caused the feeling: {quoted}. Focus on them, so that your reply recognises "
            "both the emotion and its cause."
        )
    return " ".join(parts)


def _messages_of(record: Any) -> list[dict[str, str]] | None:
    """Best effort: the prompt messages of a generate record (a dict or an object with ``messages``)."""
    for key in ("context", "messages", "prompt"):
        value = record.get(key) if isinstance(record, dict) else getattr(record, key, None)
        if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
            return value
    return None


class HEFPlugin:
    """HEF's two plug-ins as one prompt plug-in: top-k emotions + emotion-cause words.

    ``classifier``: a classifier object, a classifier folder, or ``None`` (the cached default, trained on first
    need). ``k``: how many emotions to name first. ``n_cause``: how many cause words. ``where``: ``system``
    (a paragraph appended to the system message, or a new system message) or ``user`` (a note before the last
    user turn).
    """

    name = "hef"

    def __init__(
        self,
        classifier: ProbClassifier | str | Path | None = None,
        k: int = 3,
        n_cause: int = 3,
        where: Literal["system", "user"] = "system",
        show_probs: bool = False,
    ) -> None:
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if not isinstance(n_cause, int) or n_cause < 0:
            raise ValueError(f"n_cause must be a non-negative integer, got {n_cause!r}")
        if where not in ("system", "user"):
            raise ValueError(f"where must be 'system' or 'user', got {where!r}")
        self._classifier_spec = classifier
        self._clf: ProbClassifier | None = None
        self.k = k
        self.n_cause = n_cause
        self.where = where
        self.show_probs = show_probs
        self._cache: dict[str, dict[str, Any]] = {}

    @property
    def classifier(self) -> ProbClassifier:
        if self._clf is None:
            from empo.sem.model import get_classifier

            spec = self._classifier_spec
            self._clf = get_classifier(spec if spec is not None else None)
        return self._clf

    # -- analysis -------------------------------------------------------------------------------------------
    def analyse(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """Top-k emotions and cause words of each text (batched; results cached by text)."""
        texts = list(texts)
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            from empo.sem.attribution import cause_words_batch

            clf = self.classifier
            probs = clf.predict_proba(todo)
            targets = [int(row.argmax()) for row in probs]
            causes = (
                cause_words_batch(clf, todo, targets, top_n=self.n_cause)
                if self.n_cause > 0
                else [[] for _ in todo]
            )
            for text, row, cw in zip(todo, probs, causes, strict=True):
                self._cache[text] = {
                    "top_k": [
                        {"emotion": lab, "prob": round(p, 4)}
                        for lab, p in top_k_of_row(row, clf.labels, self.k)
                    ],
                    "cause_words": [w.to_dict() for w in cw],
                }
        return [self._cache[t] for t in texts]

    # -- the plug-in interface ------------------------------------------------------------------------------
    def setup(self, records: Sequence[Any]) -> None:
        """Classify every record's context at once (records without readable messages are done in ``apply``)."""
        texts = []
        for r in records:
            msgs = _messages_of(r)
            if msgs is not None:
                texts.append(context_text(msgs))
        texts = [t for t in texts if t]
        if texts:
            log.info("hef: classifying %d contexts and finding their emotion-cause words", len(texts))
            self.analyse(texts)

    def apply(self, messages: list[dict[str, str]], record: Any = None) -> tuple[list[dict[str, str]], dict]:
        """The prompt with the HEF hint, and what the plug-in found (saved with the response)."""
        text = context_text(messages)
        if not text:
            return list(messages), {"name": self.name, "skipped": "no user turn in the prompt"}
        found = self.analyse([text])[0]
        hint = hint_text(
            [(e["emotion"], e["prob"]) for e in found["top_k"]],
            [w["word"] for w in found["cause_words"]],
            show_probs=self.show_probs,
        )
        out = add_hint(messages, hint, self.where)
        meta = {"name": self.name, **copy.deepcopy(found), "hint": hint}
        return out, meta


OPTIONS = ("classifier", "k", "n_cause", "where", "show_probs")


def create(**options: Any) -> HEFPlugin:
    """Build the plug-in from ``generate.plugin_options``; a wrong option is a one-line error naming it."""
    from empo.errors import EmpoError

    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmpoError(
            f"hef plug-in: unknown option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)} "
            "(set them with --set generate.plugin_options.KEY=VALUE)"
        )
    try:
        return HEFPlugin(**options)
    except (TypeError, ValueError) as exc:
        raise EmpoError(f"hef plug-in: {exc}") from None


def add_hint(messages: Sequence[dict[str, str]], hint: str, where: str = "system") -> list[dict[str, str]]:
    """A copy of ``messages`` with ``hint`` appended to the system message (a new one if there is none), or,
    with ``where="user"``, placed before the content of the last user turn."""
    out = [dict(m) for m in messages]
    if where == "user":
        for m in reversed(out):
            if m["role"] == "user":
                m["content"] = f"({hint})\n\n{m['content']}"
                return out
        return out
    if out and out[0]["role"] == "system":
        out[0]["content"] = f"{out[0]['content']}\n\n{hint}" if out[0]["content"] else hint
    else:
        out.insert(0, {"role": "system", "content": hint})
    return out
