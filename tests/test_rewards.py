"""Rewards and structured reasoning: hand-made cases with hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from empo.errors import EmpoError
from empo.reasoning import format_structured, parse_structured, split_reasoning, structure_score
from empo.rl.rewards import (
    REWARDS,
    RewardContext,
    completion_text,
    empathy_match,
    last_user_text,
    length_rewards,
    make_reward_funcs,
    overlap_across,
    parse_reward_specs,
    redundancy_rewards,
    repetition_within,
)

GOOD = format_structured(
    "She lost her dog.", "sad", "acknowledge, then ask", "I'm so sorry. How are you holding up?"
)


def test_parse_and_split_structured():
    parsed = parse_structured(GOOD)
    assert parsed.order == ("analysis", "emotion", "strategy", "reply")
    assert parsed.reply == "I'm so sorry. How are you holding up?"
    reply, reasoning = split_reasoning(GOOD)
    assert reply == "I'm so sorry. How are you holding up?"
    assert "<emotion>sad</emotion>" in reasoning and "<reply>" not in reasoning
    assert split_reasoning("  plain answer ") == ("plain answer", None)
    # reasoning but no reply: the model never answered
    assert split_reasoning("<analysis>x</analysis>") == ("", "<analysis>x</analysis>")
    # an unclosed reply runs to the end
    assert split_reasoning("<analysis>a</analysis><reply>hello there")[0] == "hello there"


def test_structure_score_cases():
    assert structure_score(GOOD) == 1.0
    assert structure_score("no tags at all") == 0.0
    assert (
        structure_score("<analysis>a</analysis><emotion></emotion><strategy>s</strategy><reply>r</reply>")
        == 0.75
    )
    # out of order: reply first, then analysis -> only one of them counts in the canonical order
    assert structure_score("<reply>r</reply><analysis>a</analysis>") == 0.25
    # the longest in-order run counts, not a greedy scan: analysis, emotion, reply are in order -> 3 of 4
    assert (
        structure_score("<strategy>s</strategy><analysis>a</analysis><emotion>e</emotion><reply>r</reply>")
        == 0.75
    )


def test_empathy_match_is_product_of_reference_level_probs():
    probs = {
        "ER": np.array([[0.1, 0.2, 0.7], [0.5, 0.5, 0.0]]),
        "IP": np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]]),
    }
    ref = {"ER": np.array([2, 0]), "IP": np.array([0, 2])}
    np.testing.assert_allclose(empathy_match(probs, ref), [0.7 * 0.6, 0.5 * 0.6])


def test_repetition_and_overlap():
    assert repetition_within("a b c d e") == 0.0
    # "a b c a b c": trigrams abc, bca, cab, abc -> 4 grams, 3 unique -> 0.25
    assert repetition_within("a b c a b c") == pytest.approx(0.25)
    assert overlap_across("a b c d", ["a b c d"]) == 1.0
    assert overlap_across("a b c d", ["x y z w"]) == 0.0
    # {abc, bcd} vs {abc, bcx}: 1 shared of 3 -> 1/3
    assert overlap_across("a b c d", ["a b c x"]) == pytest.approx(1 / 3)


def test_redundancy_rewards_use_groups():
    texts = ["a b c d", "a b c d", "x y z w"]
    # first two share a group -> identical -> across = 1 -> reward 0; the third is alone -> 1
    assert redundancy_rewards(texts, [0, 0, 1]) == [0.0, 0.0, 1.0]
    assert redundancy_rewards(texts, [0, 1, 2]) == [1.0, 1.0, 1.0]
    # an empty completion repeats nothing but must not win: 0
    assert redundancy_rewards(["", "a b c d"], [0, 1]) == [0.0, 1.0]


def test_length_rewards():
    assert length_rewards(["one two", "", "a b c d"], ["one two", "x", "a b"]) == [1.0, 0.0, 0.5]


def test_completion_and_prompt_helpers():
    assert completion_text([{"role": "assistant", "content": "hi"}]) == "hi"
    assert completion_text("hi") == "hi"
    prompt = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "u2"},
    ]
    assert last_user_text(prompt) == "u2"


def test_reward_specs_and_registry():
    assert set(REWARDS.names()) >= {"empathy-match", "structure", "redundancy", "length"}
    assert parse_reward_specs(["structure=0.5", "length"]) == [("structure", 0.5), ("length", 1.0)]
    with pytest.raises(EmpoError, match="unknown reward"):
        parse_reward_specs(["nope"])
    with pytest.raises(EmpoError, match="must be a number"):
        parse_reward_specs(["length=abc"])
    with pytest.raises(EmpoError, match="at least one"):
        parse_reward_specs([])


def test_trl_adapters_on_conversational_batches():
    funcs, weights = make_reward_funcs(
        ["structure=2", "length", "redundancy"], RewardContext(structured=True)
    )
    assert weights == [2.0, 1.0, 1.0]
    comps = [[{"role": "assistant", "content": GOOD}], [{"role": "assistant", "content": "just words here"}]]
    prompts = [[{"role": "user", "content": "my dog died"}]] * 2
    refs = ["I'm so sorry. How are you holding up?"] * 2
    structure, length, redundancy = funcs
    assert structure(comps, prompts=prompts) == [1.0, 0.0]
    # structured mode scores only the reply: the reply equals the reference exactly
    assert length(comps, prompts=prompts, reference=refs)[0] == 1.0
    # the unstructured completion has an empty reply (no tags -> the whole text is the reply)
    assert length(comps, prompts=prompts, reference=refs)[1] == pytest.approx(3 / 8)
    assert all(0.0 <= r <= 1.0 for r in redundancy(comps, prompts=prompts))


class FakeIdentifiers:
    """Level probabilities from keywords: 'sorry' -> ER 2, '?' -> EX 2; everything else level 0."""

    calls = 0

    def predict_proba(self, seekers, responses, batch_size=32):
        FakeIdentifiers.calls += 1
        out = {}
        for mech, key in (("ER", "sorry"), ("IP", "understand"), ("EX", "?")):
            rows = [[0.1, 0.1, 0.8] if key in r.lower() else [0.8, 0.1, 0.1] for r in responses]
            out[mech] = np.array(rows)
        return out

    def predict(self, seekers, responses, batch_size=32):
        return {m: p.argmax(1) for m, p in self.predict_proba(seekers, responses).items()}


def test_empathy_match_adapter_with_fake_identifiers(monkeypatch):
    import empo.identifiers as ident_mod

    monkeypatch.setattr(ident_mod, "load_identifiers", lambda *a, **k: FakeIdentifiers(), raising=False)
    (fn,), _ = make_reward_funcs(["empathy-match"])
    prompts = [[{"role": "user", "content": "my dog died"}]] * 2
    refs = ["I'm so sorry, what happened?"] * 2
    comps = [
        [{"role": "assistant", "content": "So sorry. What happened?"}],
        [{"role": "assistant", "content": "ok."}],
    ]
    rewards = fn(comps, prompts=prompts, reference=refs)
    # reference levels: ER 2, IP 0, EX 2. First completion: 0.8 * 0.8 * 0.8; second: 0.1 * 0.8 * 0.1
    assert rewards == pytest.approx([0.512, 0.008])
