"""Rewards for on-policy alignment (GRPO / RLOO), in a registry.

Two layers:

1. Pure functions over plain data (strings, arrays) with hand-checked tests: :func:`empathy_match`,
   :func:`structure_rewards`, :func:`redundancy_rewards`, :func:`length_rewards`.
2. TRL adapters (:func:`make_reward_funcs`): callables ``f(completions, prompts, **columns) -> list[float]`` as
   ``GRPOTrainer``/``RLOOTrainer`` expect. Weights go to the trainer config's ``reward_weights``, so a reward
   spec like ``empathy-match=1 structure=0.5`` is a weighted sum computed (and logged per reward) by TRL itself.

Completions may be conversational (``[{"role": "assistant", "content": ...}]``) or plain strings. In structured mode
(PEER) empathy-match, length and redundancy score only the ``<reply>`` section; structure scores the whole
completion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from empo.errors import EmpoError
from empo.reasoning import split_reasoning, structure_score
from empo.registry import Registry

# ---------------------------------------------------------------------------------------------- pure functions


def empathy_match(probs: dict[str, np.ndarray], ref_levels: dict[str, np.ndarray]) -> np.ndarray:
    """EmpRL's reward: prod over mechanisms of P_m(level of the reference | context, completion).

    ``probs[m]`` is (n, 3) level probabilities of the completions; ``ref_levels[m]`` is (n,) integer levels of the
    references. Returns (n,) values in [0, 1].
    """
    if not probs:
        raise ValueError("empathy_match needs at least one mechanism")
    out = None
    for mech, p in probs.items():
        p = np.asarray(p, dtype=np.float64)
        lv = np.asarray(ref_levels[mech], dtype=np.int64)
        picked = p[np.arange(len(lv)), lv]
        out = picked if out is None else out * picked
    return out


def structure_rewards(texts: Sequence[str]) -> list[float]:
    """PEER's format reward: fraction of the four sections present, non-empty and in order."""
    return [structure_score(t) for t in texts]


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _tokens(text: str) -> list[str]:
    return text.lower().split()


def repetition_within(text: str, n: int = 3) -> float:
    """Share of the text's n-grams that repeat an earlier n-gram of the same text (0 = none repeat)."""
    grams = _ngrams(_tokens(text), n)
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def overlap_across(text: str, others: Sequence[str], n: int = 3) -> float:
    """Mean Jaccard similarity of the text's n-gram set with each other sample's (0 = nothing shared)."""
    mine = set(_ngrams(_tokens(text), n))
    sims = []
    for other in others:
        theirs = set(_ngrams(_tokens(other), n))
        union = mine | theirs
        sims.append(len(mine & theirs) / len(union) if union else 0.0)
    return float(np.mean(sims)) if sims else 0.0


def redundancy_rewards(texts: Sequence[str], groups: Sequence[Any], n: int = 3) -> list[float]:
    """PEER's anti-redundancy reward: ``(1 - within) * (1 - across)`` in [0, 1].

    ``within``: repeated n-grams inside a completion; ``across``: n-gram overlap with the other samples drawn for
    the same prompt (``groups`` gives each completion's prompt id). 1.0 = no repetition at all. An empty completion
    gets 0 (it repeats nothing, but it must not win a reward that is about repetition). It measures repetition
    only: combine it with ``empathy-match`` or ``length``, never use it alone.
    """
    by_group: dict[Any, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    out = []
    for i, text in enumerate(texts):
        if not text.strip():
            out.append(0.0)
            continue
        others = [texts[j] for j in by_group[groups[i]] if j != i]
        out.append((1.0 - repetition_within(text, n)) * (1.0 - overlap_across(text, others, n)))
    return out


def length_rewards(texts: Sequence[str], references: Sequence[str]) -> list[float]:
    """Keeps replies near the reference length: ``min(l, r) / max(l, r)`` in words (0 for an empty reply)."""
    out = []
    for text, ref in zip(texts, references, strict=True):
        lt, lr = len(text.split()), max(len(ref.split()), 1)
        out.append(0.0 if lt == 0 else min(lt, lr) / max(lt, lr))
    return out


# ------------------------------------------------------------------------------------------------ TRL adapters


def completion_text(completion: Any) -> str:
    """Text of a TRL completion: a string, or a conversational list whose last message is the assistant's."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    raise EmpoError(f"unexpected completion format: {type(completion).__name__}")


def last_user_text(prompt: Any) -> str:
    """The seeker's last utterance in a TRL prompt (a string, or a list of messages)."""
    if isinstance(prompt, str):
        return prompt
    for msg in reversed(prompt):
        if msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


def _group_ids(prompts: Sequence[Any]) -> list[str]:
    # GRPO/RLOO repeat each prompt num_generations times in a batch: equal prompts form a group.
    return [repr(p) for p in prompts]


@dataclass(frozen=True)
class RewardContext:
    """What a reward factory may use: structured mode and the identifiers location."""

    structured: bool = False
    identifiers: Path | None = None


RewardFn = Callable[..., list[float]]
REWARDS: Registry[Callable[[RewardContext], RewardFn]] = Registry("reward")


def _replies(completions: Sequence[Any], structured: bool) -> list[str]:
    texts = [completion_text(c) for c in completions]
    return [split_reasoning(t)[0] for t in texts] if structured else texts


@REWARDS.register("structure")
def _structure(ctx: RewardContext) -> RewardFn:
    def structure(completions, **_: Any) -> list[float]:
        return structure_rewards([completion_text(c) for c in completions])

    return structure


@REWARDS.register("redundancy")
def _redundancy(ctx: RewardContext) -> RewardFn:
    def redundancy(completions, prompts=None, **_: Any) -> list[float]:
        groups = _group_ids(prompts) if prompts is not None else list(range(len(completions)))
        return redundancy_rewards(_replies(completions, ctx.structured), groups)

    return redundancy


@REWARDS.register("length")
def _length(ctx: RewardContext) -> RewardFn:
    def length(completions, reference=None, **_: Any) -> list[float]:
        if reference is None:
            raise EmpoError("the length reward needs a `reference` column in the training data")
        return length_rewards(_replies(completions, ctx.structured), list(reference))

    return length


@REWARDS.register("empathy-match")
def _empathy_match(ctx: RewardContext) -> RewardFn:
    from empo.identifiers import MECHANISMS, load_identifiers

    identifiers = load_identifiers(ctx.identifiers)  # loaded ONCE per reward object, batched per call
    ref_cache: dict[tuple[str, str], dict[str, int]] = {}

    def empathy_match_reward(completions, prompts=None, reference=None, **_: Any) -> list[float]:
        if reference is None or prompts is None:
            raise EmpoError("the empathy-match reward needs `prompt` and `reference` columns")
        seekers = [last_user_text(p) for p in prompts]
        refs = list(reference)
        missing = sorted({(s, r) for s, r in zip(seekers, refs, strict=True) if (s, r) not in ref_cache})
        if missing:
            lv = identifiers.predict([s for s, _ in missing], [r for _, r in missing])
            for i, key in enumerate(missing):
                ref_cache[key] = {m: int(lv[m][i]) for m in MECHANISMS}
        ref_levels = {
            m: np.array([ref_cache[(s, r)][m] for s, r in zip(seekers, refs, strict=True)])
            for m in MECHANISMS
        }
        probs = identifiers.predict_proba(seekers, _replies(completions, ctx.structured))
        return [float(x) for x in empathy_match(probs, ref_levels)]

    return empathy_match_reward


def parse_reward_specs(specs: Sequence[str]) -> list[tuple[str, float]]:
    """``["empathy-match=1", "structure=0.5", "length"]`` -> ``[("empathy-match", 1.0), ...]`` (weight 1 default)."""
    out = []
    for spec in specs:
        name, sep, raw = spec.partition("=")
        name = name.strip()
        REWARDS.get(name)  # one-line error listing the choices
        try:
            weight = float(raw) if sep else 1.0
        except ValueError:
            raise EmpoError(f"--reward {spec!r}: the weight must be a number, e.g. {name}=0.5") from None
        if not math.isfinite(weight):
            raise EmpoError(f"--reward {spec!r}: the weight must be finite")
        out.append((name, weight))
    if not out:
        raise EmpoError("GRPO/RLOO need at least one --reward, e.g. --reward empathy-match")
    return out


def make_reward_funcs(
    specs: Sequence[str], ctx: RewardContext | None = None
) -> tuple[list[RewardFn], list[float]]:
    """Build TRL reward functions and their weights (for ``reward_weights``) from reward specs."""
    ctx = ctx or RewardContext()
    parsed = parse_reward_specs(specs)
    funcs = []
    for name, _ in parsed:
        fn = REWARDS.get(name)(ctx)
        fn.__name__ = name  # TRL logs rewards/<__name__>/mean: use the name the user wrote
        funcs.append(fn)
    return funcs, [w for _, w in parsed]
