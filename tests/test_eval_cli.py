"""empo eval end to end on hand-made GEN files: fake identifiers, a tiny BERT for BERTScore, a tiny NRC lexicon."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from empo.cli import app
from empo.errors import DataError
from empo.evaluation.config import EvalConfig

runner = CliRunner()


def _ctx(user: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": user},
    ]


# (conv_id, emotion, seeker's last turn, reference, response of A, response of B)
ROWS = [
    ("c1", "sad", "my dog died", "oh no, i am so sorry", "i am so sorry", "cool"),
    ("c2", "sad", "i lost my job", "that is terrible. what happened?", "what happened?", "i am sorry"),
    ("c3", "joyful", "i got the job!", "great, congrats!", "great!", "what?"),
]


def write_gen(path: Path, which: int) -> Path:
    with path.open("w") as f:
        for cid, emo, user, ref, a, b in ROWS:
            f.write(
                json.dumps(
                    {
                        "conv_id": cid,
                        "emotion": emo,
                        "context": _ctx(user),
                        "reference": ref,
                        "response": (a, b)[which],
                        "model": f"m{which}",
                        "extra": [1, 2],
                    }
                )
                + "\n"
            )
    return path


class FakeIdentifiers:
    """ER: 2 if the text says sorry, else 0; IP: 1 if it says 'terrible' or 'so'; EX: 2 if it asks a question."""

    def __init__(self):
        self.calls = []

    def predict(self, seekers, responses, batch_size=32):
        self.calls.append((list(seekers), list(responses)))
        assert len(seekers) == len(responses)
        return {
            "ER": np.array([2 if "sorry" in t else 0 for t in responses]),
            "IP": np.array([1 if ("terrible" in t or " so " in f" {t} ") else 0 for t in responses]),
            "EX": np.array([2 if "?" in t else 0 for t in responses]),
        }


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    """A 2-layer BERT with a word-piece vocabulary, saved as a local folder bert-score can load."""
    from transformers import BertConfig, BertModel, BertTokenizer

    out = tmp_path_factory.mktemp("tiny-bert")
    words = sorted(
        {
            w
            for r in ROWS
            for t in r[2:]
            for w in t.replace(",", " ").replace(".", " ").replace("?", " ").replace("!", " ").split()
        }
        | {"hello", "hi", "be", "kind"}
    )
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", ".", "?", "!", *words]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(str(out / "vocab.txt")).save_pretrained(out)
    import torch

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(cfg).save_pretrained(out)
    return out


def test_end_to_end_two_inputs(tmp_path: Path, tiny_bert: Path):
    from empo.evaluation.bertscore import BertScore, resolve_bertscore
    from empo.evaluation.scoring import evaluate_files

    a, b = write_gen(tmp_path / "a.jsonl", 0), write_gen(tmp_path / "b.jsonl", 1)
    lex = tmp_path / "nrc.txt"
    lex.write_text("sorry\t0.2\t0.4\t0.3\ngreat\t0.9\t0.6\t0.7\ndied\t0.05\t0.7\t0.2\njob\t0.6\t0.4\t0.5\n")
    fake = FakeIdentifiers()
    scorer = BertScore(resolve_bertscore(str(tiny_bert), layer=2), batch_size=4, device="cpu")
    cfg = EvalConfig(nrc_vad=str(lex))
    res = evaluate_files([a, b], tmp_path / "ev", cfg, identifiers=fake, bertscorer=scorer)
    assert res.names == ["a", "b"]

    # one batched identifier call over the DISTINCT (seeker, text) pairs: 3 references + 6 responses
    assert len(fake.calls) == 1 and len(fake.calls[0][1]) == 9
    assert set(fake.calls[0][0]) == {"my dog died", "i lost my job", "i got the job!"}  # the LAST user turn

    ma = json.loads((tmp_path / "ev" / "a" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "ev" / "b" / "metrics.json").read_text())
    # references: ER 2,0,0; IP 1,1,0; EX 0,2,0
    # A: ER 2,0,0; IP 1,0,0; EX 0,2,0 -> diff-ER 0, diff-IP 1/3, diff-EX 0
    assert ma["metrics"]["diff-ER"] == 0 and ma["metrics"]["diff-EX"] == 0
    assert ma["metrics"]["diff-IP"] == pytest.approx(1 / 3, abs=1e-6)
    assert ma["metrics"]["diff-mean"] == pytest.approx(1 / 9, abs=1e-6)
    # B: ER 0,2,0; IP 0,0,0; EX 0,0,2 -> diff-ER 8/3, diff-IP 2/3, diff-EX 8/3
    assert mb["metrics"]["diff-ER"] == pytest.approx(8 / 3, abs=1e-6)
    assert mb["metrics"]["diff-mean"] == pytest.approx((8 / 3 + 2 / 3 + 8 / 3) / 3, abs=1e-6)
    assert mb["metrics"]["level-ER-reference"] == pytest.approx(2 / 3, abs=1e-6)
    assert ma["metrics"]["emp-f1"] > mb["metrics"]["emp-f1"]
    for m in (
        "bertscore-P",
        "bertscore-R",
        "bertscore-F1",
        "distinct-1",
        "distinct-2",
        "entropy-2",
        "mtld",
        "vader-response",
        "vader-diff",
        "nrc-valence",
        "nrc-valence-diff",
        "words",
    ):
        assert ma["metrics"][m] is not None, m
    assert ma["metrics"]["words"] == pytest.approx((4 + 2 + 1) / 3, abs=1e-6)
    # per emotion: the same metrics on the subsets
    assert set(ma["per_emotion"]) == {"sad", "joyful"}
    assert ma["per_emotion"]["sad"]["n"] == 2
    assert ma["per_emotion"]["sad"]["metrics"]["diff-IP"] == pytest.approx(0.5, abs=1e-6)
    assert ma["model"] == "m0" and ma["settings"]["bertscore"]["layer"] == 2 and ma["skipped"] == {}
    scores = [json.loads(x) for x in (tmp_path / "ev" / "a" / "scores.jsonl").read_text().splitlines()]
    assert [s["conv_id"] for s in scores] == ["c1", "c2", "c3"] and scores[0]["level_ER_response"] == 2

    md = (tmp_path / "ev" / "comparison.md").read_text()
    assert (
        "| a | 3 |" in md and "| b | 3 |" in md and "diff-mean per ED emotion" in md and "reference (a)" in md
    )
    assert (tmp_path / "ev" / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "ev" / "summary.json").read_text())
    assert set(summary) == {"a", "b"}

    # paired B minus A over the same 3 dialogues, by hand: per-example diff-mean A = [0, 1/3, 0],
    # B = [5/3, 3, 4/3] -> differences [5/3, 8/3, 4/3]; words A = [4, 2, 1], B = [1, 3, 1] -> [-3, 1, 0]
    pb = mb["paired"]
    assert pb["vs"] == "a" and pb["n"] == 3 and "paired" not in ma
    d = np.array([5 / 3, 8 / 3, 4 / 3])
    assert pb["diff-mean"]["mean"] == pytest.approx(17 / 9)
    assert pb["diff-mean"]["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert pb["words"]["mean"] == pytest.approx(-2 / 3)
    assert "Paired differences vs a" in md and "+1.889 ± 0.401" in md
    assert summary["b"]["paired"]["n"] == 3


def test_bertscore_rescaling_with_a_computed_baseline(tmp_path: Path, tiny_bert: Path):
    from empo.evaluation.baseline import all_layer_scores, baseline_rows, random_pairs, write_baseline
    from empo.evaluation.bertscore import BertScore, resolve_bertscore

    sentences = [r[3] for r in ROWS] + [r[4] for r in ROWS]
    cands, refs = random_pairs(sentences, 12, seed=0)
    assert all(c != r for c, r in zip(cands, refs, strict=False))
    rows = baseline_rows(all_layer_scores(str(tiny_bert), 2, cands, refs, batch_size=4))
    assert [r[0] for r in rows] == [0, 1, 2]
    path = tmp_path / "base.csv"
    write_baseline(path, rows)
    spec = resolve_bertscore(str(tiny_bert), layer=2, baseline=path)
    raw = BertScore(spec, device="cpu").score(["oh no"], ["i am so sorry"])
    scaled = BertScore(spec, rescale=True, device="cpu").score(["oh no"], ["i am so sorry"])
    b = rows[2][3]
    assert scaled[2][0] == pytest.approx((raw[2][0] - b) / (1 - b), abs=1e-4)


def test_shipped_minilm_baseline_is_bert_score_format():
    from empo.evaluation.bertscore import BASELINE_DIR, MINILM_LAYER, MINILM_NAME

    lines = (BASELINE_DIR / f"{MINILM_NAME}.csv").read_text().splitlines()
    assert lines[0] == "LAYER,P,R,F" and len(lines) == 8  # embeddings + 6 layers
    assert 0 < float(lines[1 + MINILM_LAYER].split(",")[3]) < 1


def test_roc_auc():
    from empo.evaluation.baseline import roc_auc

    assert roc_auc(np.array([0.9, 0.8]), np.array([0.1, 0.2])) == 1.0
    assert roc_auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert roc_auc(np.array([0.1, 0.9]), np.array([0.5])) == 0.5


def test_cli_scores_without_models(tmp_path: Path):
    a, b = write_gen(tmp_path / "a.jsonl", 0), write_gen(tmp_path / "b.jsonl", 1)
    res = runner.invoke(
        app,
        [
            "eval",
            str(a),
            str(b),
            "--out",
            str(tmp_path / "ev"),
            "--no-identifiers",
            "--bertscore-model",
            "none",
            "--nrc-vad",
            str(tmp_path / "missing.txt"),
        ],
    )
    assert res.exit_code == 1 and "missing.txt" in res.output  # an explicit lexicon path must exist
    res = runner.invoke(
        app,
        [
            "eval",
            str(a),
            str(b),
            "--out",
            str(tmp_path / "ev"),
            "--no-identifiers",
            "--bertscore-model",
            "none",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "b" / "metrics.json").read_text())
    assert "diff-mean" not in m["metrics"] and m["metrics"]["distinct-1"] is not None
    assert "identifiers" in m["skipped"] and "bertscore" in m["skipped"]


def test_inputs_answering_different_dialogues_are_flagged(tmp_path: Path, caplog):
    from empo.evaluation.scoring import GenInput, read_gen, warn_if_different_dialogues

    a, b = write_gen(tmp_path / "a.jsonl", 0), write_gen(tmp_path / "b.jsonl", 1)
    ra, rb = read_gen(a), read_gen(b)
    assert warn_if_different_dialogues([GenInput("a", a, ra), GenInput("b", b, rb)])
    with caplog.at_level("WARNING", logger="empo"):
        assert not warn_if_different_dialogues([GenInput("a", a, ra), GenInput("b", b, rb[:-1])])
    assert "answer different dialogues" in caplog.text


def test_bertscore_none_in_a_recipe_turns_it_off():
    from empo.evaluation.config import EvalConfig

    assert EvalConfig(bertscore_model="none").bertscore_model is None
    assert EvalConfig(bertscore_model="minilm").bertscore_model == "minilm"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("", "empty"),
        (
            '{"conv_id": "1", "context": "x", "reference": "r", "response": "a"}\n{not json\n',
            r"bad\.jsonl:2: not valid JSON",
        ),
        (
            '{"conv_id": "1", "context": "x", "reference": "r"}\n',
            r"bad\.jsonl:1: missing field\(s\) response",
        ),
        (
            '{"conv_id": "1", "context": "x", "reference": "r", "response": 3}\n',
            r"bad\.jsonl:1: 'response' must be a string",
        ),
        (
            '{"conv_id": "1", "context": [{"role": "system", "content": "s"}], "reference": "r", "response": "a"}\n',
            r"bad\.jsonl:1: 'context' has no user message",
        ),
        ("[1, 2]\n", r"bad\.jsonl:1: expected a JSON object"),
    ],
)
def test_bad_input_is_one_line_naming_the_line(tmp_path: Path, body: str, match: str):
    from empo.evaluation.scoring import read_gen

    bad = tmp_path / "bad.jsonl"
    bad.write_text(body)
    with pytest.raises(DataError, match=match):
        read_gen(bad)
    res = runner.invoke(app, ["eval", str(bad), "--out", str(tmp_path / "ev"), "--no-identifiers"])
    assert res.exit_code == 1
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) <= 3
    assert not (tmp_path / "ev").exists()  # nothing written, no model loaded


def test_cli_dispatches_suite_and_compare(tmp_path: Path, monkeypatch):
    seen = {}
    fake = types.ModuleType("empo.suites.cli")
    fake.suite_main = lambda **kw: seen.update(suite=kw)
    fake.compare_main = lambda inputs: seen.update(compare=[str(p) for p in inputs])
    monkeypatch.setitem(sys.modules, "empo.suites.cli", fake)
    res = runner.invoke(
        app,
        [
            "eval",
            "--suite",
            "mmlu",
            "--model",
            "m",
            "--limit",
            "2",
            "--num-fewshot",
            "0",
            "--out",
            str(tmp_path),
            "--batch-size",
            "4",
        ],
    )
    assert res.exit_code == 0, res.output
    kw = seen["suite"]
    assert kw["suite"] == "mmlu" and kw["model"] == "m" and kw["limit"] == 2 and kw["num_fewshot"] == 0
    assert kw["batch_size"] == 4 and kw["out"] == tmp_path and kw["tasks_data"] is None
    res = runner.invoke(app, ["eval", "--compare", "r1", "r2"])
    assert res.exit_code == 0, res.output
    assert seen["compare"] == ["r1", "r2"]


def test_cli_needs_inputs_and_out(tmp_path: Path):
    res = runner.invoke(app, ["eval", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "GEN.jsonl" in res.output
    a = write_gen(tmp_path / "a.jsonl", 0)
    res = runner.invoke(app, ["eval", str(a)])
    assert res.exit_code == 1 and "--out" in res.output


@pytest.mark.slow
def test_real_minilm_bertscore_ranks_a_paraphrase_higher():
    from empo.evaluation.bertscore import BertScore, resolve_bertscore

    spec = resolve_bertscore("minilm")
    s = BertScore(spec, rescale=True, device="cpu")
    _, _, f = s.score(
        ["I am so sorry to hear that.", "The weather is nice."],
        ["I'm really sorry to hear about that.", "I'm really sorry to hear about that."],
    )
    assert f[0] > f[1] and f[0] > 0.5
