"""HEF: emotion-cause words by occlusion, the ``hef`` prompt plug-in, and parsing an LLM's emotion answer.

A keyword classifier whose behaviour the tests control stands in for the real one (fast, exact expectations).
"""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest

from empo.sem.attribution import cause_words, cause_words_batch, occlude, word_spans
from empo.sem.emotion_qa import parse_emotion, question_messages
from empo.sem.hef import HEFPlugin, add_hint, context_text, hint_text

LABELS = ["sad", "joyful", "afraid", "angry", "proud"]


class KeywordClassifier:
    """Logits are sums of per-word weights; counts its calls and the texts it saw."""

    labels = LABELS
    WEIGHTS: ClassVar[dict[str, dict[str, float]]] = {
        "died": {"sad": 4.0},
        "dog": {"sad": 0.5, "joyful": 0.3},
        "funeral": {"sad": 2.0},
        "promotion": {"proud": 3.0, "joyful": 1.0},
        "spider": {"afraid": 3.0},
        "huge": {"afraid": 0.5},
        "stole": {"angry": 3.0},
    }

    def __init__(self) -> None:
        self.calls = 0
        self.seen: list[str] = []

    def predict_proba(self, texts):
        self.calls += 1
        self.seen.extend(texts)
        out = np.zeros((len(texts), len(self.labels)))
        for i, t in enumerate(texts):
            for w in t.lower().split():
                for lab, v in self.WEIGHTS.get(w.strip(".,!?"), {}).items():
                    out[i, self.labels.index(lab)] += v
        e = np.exp(out - out.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)


# -- attribution -----------------------------------------------------------------------------------------------
def test_word_spans_and_occlude():
    text = "My dog died, it's sad."
    assert [text[s:e] for s, e in word_spans(text)] == ["My", "dog", "died", "it's", "sad"]
    assert occlude(text, word_spans(text)[2]) == "My dog , it's sad."


def test_my_dog_died_blames_died():
    words = cause_words(KeywordClassifier(), "my dog died")
    assert [w.word for w in words] == ["died", "dog"]
    assert words[0].score > words[1].score > 0


def test_cause_words_follow_the_target_emotion():
    clf = KeywordClassifier()
    text = "a huge spider crawled on my dog after the funeral"
    assert cause_words(clf, text, top_n=1)[0].word == "spider"  # predicted: afraid
    sad = LABELS.index("sad")
    assert [w.word for w in cause_words(clf, text, target=sad, top_n=2)] == ["funeral", "dog"]


def test_stopwords_never_and_repeats_once():
    clf = KeywordClassifier()
    words = cause_words(clf, "I was so so sad that my dog died and my dog died", top_n=5)
    assert [w.word for w in words] == ["died", "dog"]
    # a text with no cause at all gives nothing rather than noise
    assert cause_words(clf, "I was there and then I was not", top_n=3) == []


def test_cause_words_batch_is_one_call():
    clf = KeywordClassifier()
    out = cause_words_batch(clf, ["my dog died", "he stole my promotion", ""], top_n=1)
    assert clf.calls == 1
    assert [[w.word for w in ws] for ws in out] == [["died"], ["stole"], []]
    assert out[0][0].to_dict()["word"] == "died"
    with pytest.raises(ValueError):
        cause_words_batch(clf, ["a", "b"], targets=[0])


# -- the plug-in -----------------------------------------------------------------------------------------------
def _record(text: str) -> dict:
    return {
        "id": "x",
        "emotion": "sad",
        "context": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": text},
            {"role": "assistant", "content": "Oh no."},
            {"role": "user", "content": "Yes, yesterday."},
        ],
    }


def test_hint_text_two_stages():
    hint = hint_text([("sad", 0.6), ("afraid", 0.2), ("angry", 0.1)], ["died", "dog"])
    assert "sad, afraid or angry" in hint
    assert "first, then the others" in hint
    assert '"died", "dog"' in hint
    assert "%" not in hint
    assert "(60%)" in hint_text([("sad", 0.6)], [], show_probs=True)
    assert "Words" not in hint_text([("sad", 0.6)], [])


def test_add_hint_places():
    msgs = [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "hi"}]
    assert add_hint(msgs, "H")[0]["content"] == "Be kind.\n\nH"
    assert add_hint(msgs[1:], "H")[0] == {"role": "system", "content": "H"}
    user = add_hint(msgs, "H", where="user")
    assert user[0]["content"] == "Be kind." and user[1]["content"].startswith("(H)")
    assert msgs[0]["content"] == "Be kind."  # never modified in place


def test_plugin_setup_then_apply():
    clf = KeywordClassifier()
    plugin = HEFPlugin(classifier=clf, k=3, n_cause=2)
    records = [_record("my dog died"), _record("a huge spider!")]
    plugin.setup(records)
    calls_after_setup = clf.calls
    messages = records[0]["context"]
    new, meta = plugin.apply(messages, records[0])
    assert clf.calls == calls_after_setup  # served from setup's batch
    assert new is not messages and messages[0]["content"] == "Be kind."
    assert new[0]["role"] == "system" and new[0]["content"].startswith("Be kind.\n\n")
    assert "the user most likely feels sad" in new[0]["content"]
    assert '"died"' in new[0]["content"]
    assert new[1:] == messages[1:]
    assert meta["name"] == "hef"
    assert meta["top_k"][0]["emotion"] == "sad" and len(meta["top_k"]) == 3
    assert 0 < meta["top_k"][0]["prob"] <= 1
    assert [w["word"] for w in meta["cause_words"]] == ["died", "dog"]
    json.dumps(meta)  # saved with the response: must be JSON-able
    # the classifier reads the user turns only
    assert context_text(messages) == "my dog died Yes, yesterday."


def test_plugin_works_without_setup_and_without_system():
    plugin = HEFPlugin(classifier=KeywordClassifier(), k=1, n_cause=0, where="system")
    new, meta = plugin.apply([{"role": "user", "content": "he stole my bike"}], {})
    assert new[0]["role"] == "system" and "angry" in new[0]["content"]
    assert meta["cause_words"] == [] and len(meta["top_k"]) == 1
    new, meta = plugin.apply([{"role": "system", "content": "S"}], {})
    assert meta["skipped"] and new == [{"role": "system", "content": "S"}]
    with pytest.raises(ValueError):
        HEFPlugin(classifier=KeywordClassifier(), k=0)


def test_plugin_is_registered_for_generate(tmp_path):
    from empo.generate.plugins import PLUGINS

    plugin = PLUGINS.get("hef")(classifier=KeywordClassifier(), k=2)
    _, meta = plugin.apply(_record("my dog died")["context"], {})
    assert meta["top_k"][0]["emotion"] == "sad"


def test_plugin_options_are_checked():
    from empo.errors import EmpoError
    from empo.generate.plugins import PLUGINS

    with pytest.raises(EmpoError, match=r"unknown option.*topk"):
        PLUGINS.get("hef")(topk=3)
    with pytest.raises(EmpoError, match="where must be"):
        PLUGINS.get("hef")(where="middle")
    with pytest.raises(EmpoError, match="k must be"):
        PLUGINS.get("hef")(k=0)


def test_plugin_loads_a_classifier_folder(tmp_path, monkeypatch):
    """A folder path in plugin_options (what a recipe passes) is loaded lazily, on first use."""
    from empo.errors import EmpoError

    plugin = HEFPlugin(classifier=str(tmp_path / "missing"))
    with pytest.raises(EmpoError, match="not an emotion classifier folder"):
        plugin.apply([{"role": "user", "content": "hi"}], {})


# -- asking the LLM --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("sad", "sad"),
        ("Sad.", "sad"),
        ("The speaker feels sadness.", "sad"),
        ("Emotion: Proud", "proud"),
        ("I think the emotion is: afraid, maybe angry", "afraid"),
        ("They are scared and angry", "afraid"),
        ("happy", "joyful"),
        ("no idea", None),
        ("", None),
    ],
)
def test_parse_emotion(answer, expected):
    assert parse_emotion(answer, LABELS) == expected


def test_parse_emotion_ignores_synonyms_outside_the_labels():
    assert parse_emotion("happy", ["sad"]) is None


def test_question_messages():
    ctx = [{"role": "system", "content": "x"}, {"role": "user", "content": "my dog died"}]
    msgs = question_messages(ctx, LABELS, hint="HINT")
    assert msgs[0]["role"] == "system" and msgs[0]["content"].endswith("HINT")
    assert "Speaker: my dog died" in msgs[1]["content"]
    assert "sad, joyful, afraid, angry, proud" in msgs[1]["content"]
    assert "HINT" not in question_messages("text", LABELS)[0]["content"]


# -- end to end: `empo generate --plugin hef` with a tiny LLM and a tiny classifier folder -----------------------
@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    from test_sem import build_tiny_encoder

    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


def test_generate_with_hef_plugin_end_to_end(tmp_path, tiny_model_dir, tiny_encoder, monkeypatch):
    from typer.testing import CliRunner

    from empo.cli import app
    from empo.sem.train import SemTrainConfig, train_classifier
    from test_sem import write_situations

    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    situations = write_situations(tmp_path / "ed_situations")
    clf_dir = tmp_path / "clf"
    cfg = SemTrainConfig(
        encoder=str(tiny_encoder), data=str(situations), device="cpu", l2_grid=[1e-2], probe_max_iter=30
    )
    train_classifier(cfg, clf_dir, evaluate=False)
    prompts = tmp_path / "prompts.jsonl"
    with prompts.open("w") as f:
        for text in ("i was so sad today", "my friend was proud of me"):
            context = [{"role": "system", "content": "be kind"}, {"role": "user", "content": text}]
            f.write(json.dumps({"context": context, "emotion": "sad"}) + "\n")
    out = tmp_path / "gen.jsonl"
    res = CliRunner().invoke(
        app,
        ["generate", "--model", str(tiny_model_dir), "--prompts", str(prompts), "--out", str(out),
         "--max-new-tokens", "4", "--plugin", "hef",
         "--set", f"generate.plugin_options.classifier={clf_dir}", "--set", "generate.plugin_options.k=2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert len(row["plugin"]["top_k"]) == 2
        assert row["plugin"]["name"] == "hef"
        assert row["context"][0]["content"] == "be kind"  # the original dialogue is kept
        assert row["prompt"][0]["content"].startswith("be kind\n\nEmotion hint")
