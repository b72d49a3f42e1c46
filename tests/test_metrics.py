"""Response metrics: every pure function on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from empo.errors import DataError
from empo.evaluation import metrics as M


def test_diff_epitome_hand_computed():
    # differences 0, 1, -2, 1 -> squares 0, 1, 4, 1 -> mean 1.5
    assert M.diff_epitome([0, 1, 0, 2], [0, 0, 2, 1]) == pytest.approx(1.5)
    assert M.mean_abs_diff([0, 1, 0, 2], [0, 0, 2, 1]) == pytest.approx(1.0)
    assert M.diff_epitome([2, 2], [2, 2]) == 0.0
    assert math.isnan(M.diff_epitome([], []))
    with pytest.raises(ValueError):
        M.diff_epitome([0, 1], [0])


def test_mean_level():
    assert M.mean_level([0, 1, 2, 1]) == pytest.approx(1.0)
    assert M.mean_level(np.array([2, 2, 0])) == pytest.approx(4 / 3)


def test_weighted_f1_hand_computed():
    # y_true = reference levels, y_pred = response levels
    # level 0: P 1/1, R 1/2 -> F 2/3 (support 2); level 1: P 1/2, R 1 -> 2/3 (support 1); level 2: F 1 (support 1)
    # weighted: (2 * 2/3 + 2/3 + 1) / 4 = 0.75
    assert M.weighted_f1([0, 0, 1, 2], [0, 1, 1, 2]) == pytest.approx(0.75)
    assert M.weighted_f1([1, 1], [1, 1]) == pytest.approx(1.0)
    # a level never predicted scores 0 and the one predicted level is wrong everywhere
    assert M.weighted_f1([0, 0], [2, 2]) == 0.0


def test_emp_f1_is_the_mean_over_mechanisms():
    resp = {"ER": [0, 1, 1, 2], "IP": [1, 1], "EX": [0, 0]}
    ref = {"ER": [0, 0, 1, 2], "IP": [1, 1], "EX": [2, 2]}
    # ER 0.75 (above), IP 1.0, EX 0.0 -> 0.5833
    assert M.emp_f1(resp, ref) == pytest.approx((0.75 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        M.emp_f1({"ER": [0]}, {"IP": [0]})


def test_tokenize():
    assert M.tokenize("I'm SO sorry, Bob!! don't go.") == ["i'm", "so", "sorry", "bob", "don't", "go"]
    assert M.tokenize("...") == []


def test_distinct_n_corpus_level():
    texts = ["I am sad", "I am glad"]
    # unigrams: i am sad i am glad -> 4 distinct / 6
    assert M.distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams: (i am)(am sad)(i am)(am glad) -> 3 distinct / 4; none cross from one text into the next
    assert M.distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert M.distinct_n(["oh"], 2) == 0.0
    assert M.distinct_n([], 1) == 0.0


def test_ngram_entropy_bits():
    # unigrams a a b b -> two types at 1/2 -> 1 bit; a a a a -> 0 bits; a b c d -> 2 bits
    assert M.ngram_entropy(["a a", "b b"], 1) == pytest.approx(1.0)
    assert M.ngram_entropy(["a a a a"], 1) == pytest.approx(0.0)
    assert M.ngram_entropy(["a b c d"], 1) == pytest.approx(2.0)
    # bigrams of "a b a b": (a b)(b a)(a b) -> p = 2/3, 1/3
    assert M.ngram_entropy(["a b a b"], 2) == pytest.approx(
        -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    )
    assert M.ngram_entropy([""], 1) == 0.0


def test_mtld_hand_computed():
    # forward: a b (TTR 1), a -> TTR 2/3 <= 0.72: one factor, restart; b -> TTR 1, partial (1-1)/(1-0.72) = 0
    # -> 4 words / 1 factor = 4; backward the same -> MTLD 4
    assert M.mtld(["a b", "a b"]) == pytest.approx(4.0)
    # all distinct words: TTR never drops -> one factor -> MTLD = number of words
    assert M.mtld(["one two three"]) == pytest.approx(3.0)
    assert math.isnan(M.mtld(["", "!!"]))


def test_word_counts():
    assert M.word_counts(["I am here.", "", " two  words "]).tolist() == [3.0, 0.0, 2.0]


def test_vader_compound_signs():
    out = M.vader_compound(
        ["I am so happy and grateful!", "This is terrible and awful.", "The table is brown."]
    )
    assert out[0] > 0.5 and out[1] < -0.5 and out[2] == 0.0


def test_nrc_vad_max_and_mean(tmp_path: Path):
    lex_path = tmp_path / "lex.txt"
    lex_path.write_text("happy\t1.0\t0.6\t0.8\nsad\t0.1\t0.3\t0.2\ndog\t0.7\t0.5\t0.4\n")
    lex = M.load_nrc_vad(lex_path)
    got = M.nrc_vad_scores(["Happy dog", "so sad", "nothing here"], lex, "max")
    np.testing.assert_allclose(got[0], [1.0, 0.6, 0.8])
    np.testing.assert_allclose(got[1], [0.1, 0.3, 0.2])
    assert np.isnan(got[2]).all()
    np.testing.assert_allclose(M.nrc_vad_scores(["happy dog"], lex, "mean")[0], [0.85, 0.55, 0.6])


def test_nrc_vad_header_and_errors(tmp_path: Path):
    p = tmp_path / "v2.txt"
    p.write_text("term\tvalence\tarousal\tdominance\ngood\t0.9\t0.4\t0.6\n")
    assert M.load_nrc_vad(p) == {"good": (0.9, 0.4, 0.6)}
    bad = tmp_path / "bad.txt"
    bad.write_text("good\t0.9\t0.4\t0.6\nbad\tx\t0.4\t0.6\n")
    with pytest.raises(DataError, match=r"bad\.txt:2"):
        M.load_nrc_vad(bad)
    with pytest.raises(DataError, match="not found"):
        M.load_nrc_vad(tmp_path / "missing.txt")


def _columns():
    return {
        "response": ["i am sad", "i am glad", "oh no"],
        "reference": ["so sorry", "that is great", "oh no"],
        "level_ER_response": np.array([0, 1, 2]),
        "level_ER_reference": np.array([0, 0, 2]),
        "level_IP_response": np.array([1, 1, 1]),
        "level_IP_reference": np.array([1, 1, 1]),
        "level_EX_response": np.array([0, 0, 0]),
        "level_EX_reference": np.array([2, 0, 0]),
        "vader_response": np.array([0.5, -0.5, 0.0]),
        "vader_reference": np.array([0.0, 0.0, 0.0]),
        "vader_context": np.array([1.0, 0.5, np.nan]),
    }


def test_registry_computes_from_columns_and_skips_missing():
    c = _columns()
    got = M.compute_metrics(c)
    assert got["diff-ER"] == pytest.approx(1 / 3)
    assert got["diff-IP"] == 0.0
    assert got["diff-EX"] == pytest.approx(4 / 3)
    assert got["diff-mean"] == pytest.approx((1 / 3 + 0 + 4 / 3) / 3)
    assert got["absdiff-EX"] == pytest.approx(2 / 3)
    assert got["level-ER-response"] == pytest.approx(1.0)
    assert got["level-EX-reference"] == pytest.approx(2 / 3)
    assert got["vader-diff"] == pytest.approx(((1.0 - 0.5) + (0.5 + 0.5)) / 2)  # NaN context skipped
    assert got["words"] == pytest.approx(8 / 3)
    assert "bertscore-F1" not in got and "nrc-valence" not in got  # no columns -> skipped, not zero
    assert set(got) <= set(M.METRICS.names())


def test_subset_slices_every_column():
    c = M.subset(_columns(), [2, 0])
    assert c["response"] == ["oh no", "i am sad"]
    assert c["level_ER_response"].tolist() == [2, 0]
    assert M.compute_metrics(c, ["diff-ER"]) == {"diff-ER": 0.0}


def test_every_metric_is_documented_and_directed():
    for name in M.METRICS:
        m = M.METRICS.get(name)
        assert m.description and m.better in ("lower", "higher", "") and m.needs, name


def test_paired_difference_hand_computed():
    from empo.evaluation.metrics import paired_difference

    # b - a = [1, 2, 3] -> mean 2, sd 1, se 1/sqrt(3); a NaN drops its pair
    res = paired_difference([0.0, 0.0, 0.0, float("nan")], [1.0, 2.0, 3.0, 5.0])
    assert res == {"n": 3, "mean": 2.0, "se": pytest.approx(1 / np.sqrt(3))}
    assert paired_difference([1.0], [2.0]) is None
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0, 2.0], [1.0])
