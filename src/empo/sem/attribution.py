"""Emotion-cause words by occlusion: the words whose removal lowers the predicted emotion's probability most.

For a text with words w_1..w_n and a target emotion c (by default the classifier's top-1), the score of w_i is
``p(c | text) - p(c | text without w_i)``. It needs nothing from the model but ``predict_proba``, so it works with
any classifier (and with a fake one in tests). All occluded variants of all texts go through the classifier in
one batched call. Function words are neither occluded nor returned (they are rarely a cause, and skipping them
halves the cost); repeated words are scored once per occurrence and reported once, with their best score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from empo.sem.model import ProbClassifier

WORD_RE = re.compile(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*")

# Function words, pronouns, auxiliaries and fillers: never reported as emotion causes.
_STOPWORD_TEXT = """
    a an the and or but if so as of at by for from in into on onto off out over under up down to with without
    about above after again against all am any are aren't be because been before being below between both
    can can't cannot could couldn't did didn't do does doesn't doing don't during each few further had hadn't
    has hasn't have haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
    i'd i'll i'm i've is isn't it it's its itself let's me more most mustn't my myself no nor not now once only
    other ought our ours ourselves own same shan't she she'd she'll she's should shouldn't some such than that
    that's their theirs them themselves then there there's these they they'd they'll they're they've this those
    through too until very was wasn't we we'd we'll we're we've were weren't what what's when when's where
    where's which while who who's whom why why's will would wouldn't you you'd you'll you're you've your yours
    yourself yourselves just really also still even ever yet im ive id dont didnt cant wont got get gets
    getting go going went gone one ones thing things something anything lot lots much many well oh um uh yeah
    yes ok okay like would've could've should've s t d ll m re ve
    see saw seen tell told say said says make made making take took come came know knew think thought put
    feel feels felt feeling last
    """
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class CauseWord:
    """One emotion-cause word: ``score`` is the drop in the target emotion's probability without it."""

    word: str
    score: float
    start: int
    end: int

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["score"] = round(float(self.score), 4)
        return d


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (letters/digits with inner apostrophes)."""
    return [m.span() for m in WORD_RE.finditer(text)]


def occlude(text: str, span: tuple[int, int]) -> str:
    """``text`` without the characters of ``span``, whitespace collapsed."""
    return " ".join((text[: span[0]] + " " + text[span[1] :]).split())


def is_content_word(word: str) -> bool:
    w = word.lower().replace("’", "'")
    return w not in STOPWORDS and not w.isdigit() and len(w) > 1


def cause_words_batch(
    clf: ProbClassifier,
    texts: Sequence[str],
    targets: Sequence[int | None] | None = None,
    top_n: int = 3,
    max_words: int = 120,
    min_score: float = 0.0,
) -> list[list[CauseWord]]:
    """The ``top_n`` cause words of each text for its target emotion (index into ``clf.labels``; ``None`` or
    no ``targets``: the predicted top-1). Only words whose removal lowers the target's probability by more than
    ``min_score`` are kept; at most the last ``max_words`` content words of a text are occluded (the end of a
    dialogue context is the most recent)."""
    import numpy as np

    texts = list(texts)
    if targets is not None and len(targets) != len(texts):
        raise ValueError("targets must have one entry per text")
    spans_per_text: list[list[tuple[int, int]]] = []
    variants: list[str] = []
    for text in texts:
        spans = [s for s in word_spans(text) if is_content_word(text[s[0] : s[1]])][-max_words:]
        spans_per_text.append(spans)
        variants.append(text)
        variants.extend(occlude(text, s) for s in spans)
    if not variants:
        return []
    probs = np.asarray(clf.predict_proba(variants))
    out: list[list[CauseWord]] = []
    row = 0
    for t, (text, spans) in enumerate(zip(texts, spans_per_text, strict=True)):
        base = probs[row]
        occluded = probs[row + 1 : row + 1 + len(spans)]
        row += 1 + len(spans)
        target = targets[t] if targets is not None else None
        c = int(np.argmax(base)) if target is None else int(target)
        best: dict[str, CauseWord] = {}
        for (s, e), p in zip(spans, occluded, strict=True):
            score = float(base[c] - p[c])
            if score <= min_score:
                continue
            word = text[s:e]
            key = word.lower()
            if key not in best or score > best[key].score:
                best[key] = CauseWord(word=word, score=score, start=s, end=e)
        out.append(sorted(best.values(), key=lambda w: (-w.score, w.start))[:top_n])
    return out


def cause_words(
    clf: ProbClassifier, text: str, target: int | None = None, top_n: int = 3, **kwargs
) -> list[CauseWord]:
    """The emotion-cause words of one text (see :func:`cause_words_batch`)."""
    return cause_words_batch(clf, [text], [target], top_n=top_n, **kwargs)[0]
