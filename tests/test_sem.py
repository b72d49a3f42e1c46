"""The HEF emotion classifier: metrics, data, the linear probe, training/saving/loading, evaluation, the CLI.

A tiny BERT encoder (built in a fixture) and a tiny ed_situations folder keep every test here fast; the real
MiniLM on the full shared data is behind the ``slow`` marker.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import build_tiny_tokenizer
from empo.errors import DataError, EmpoError
from empo.sem.metrics import classification_metrics, macro_f1, top_k_accuracy

runner = CliRunner()

# Situations built from the tiny tokenizer's vocabulary, one cue word per emotion, so a tiny model can learn them.
CUES = {"sad": "sad", "joyful": "happy", "afraid": "afraid", "proud": "proud", "lonely": "lonely"}
FILLER = ["i", "was", "so", "really", "my", "friend", "the", "day", "today", "work", "and", "felt", "very"]


# -- metrics ---------------------------------------------------------------------------------------------------
def test_top_k_accuracy_hand_computed():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.4, 0.35, 0.25]])
    gold = [1, 1, 0, 2]
    assert top_k_accuracy(probs, gold, 1) == pytest.approx(1 / 4)
    assert top_k_accuracy(probs, gold, 2) == pytest.approx(2 / 4)  # rows 0 and 1
    assert top_k_accuracy(probs, gold, 3) == 1.0


def test_top_k_ties_go_to_lower_index():
    assert top_k_accuracy(np.array([[0.5, 0.5]]), [0], 1) == 1.0
    assert top_k_accuracy(np.array([[0.5, 0.5]]), [1], 1) == 0.0


def test_macro_f1_hand_computed_and_matches_sklearn():
    pred = [0, 0, 1, 1, 2]
    gold = [0, 1, 1, 1, 0]
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp0 fn1 -> 0.8; class 2: tp0 fp1 fn0 -> 0
    assert macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    # a class only ever predicted (never gold) counts with F1 0, as in scikit-learn
    assert macro_f1([0, 0], [0, 0]) == 1.0
    assert macro_f1([0, 1], [0, 0]) == pytest.approx((2 / 3 + 0.0) / 2)


def test_classification_metrics_keys():
    m = classification_metrics(np.eye(3), [0, 1, 2])
    assert m == {"n": 3, "top1": 1.0, "top3": 1.0, "macro_f1": 1.0}


# -- data ------------------------------------------------------------------------------------------------------
def _emotions() -> list[str]:
    from empo.data.ed import EMOTIONS

    return list(EMOTIONS)


def write_situations(root: Path, n_train: int = 60, n_eval: int = 20, seed: int = 0) -> Path:
    """A tiny ed_situations folder: the 32 real label names, rows for the CUES emotions only."""
    import csv

    rng = random.Random(seed)
    names = _emotions()
    root.mkdir(parents=True, exist_ok=True)
    (root / "label_map.json").write_text(json.dumps({str(i): n for i, n in enumerate(names)}))
    for split, n in (("train", n_train), ("valid", n_eval), ("test", n_eval)):
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "aug_text", "label"])
            for i in range(n):
                emotion = list(CUES)[i % len(CUES)]
                words = [*rng.sample(FILLER, 4), CUES[emotion], *rng.sample(FILLER, 2)]
                w.writerow([" ".join(words), " ".join(reversed(words)), names.index(emotion)])
    return root


@pytest.fixture()
def situations(tmp_path) -> Path:
    return write_situations(tmp_path / "ed_situations")


def test_load_situations(situations):
    from empo.sem.data import load_label_names, load_situations

    names = load_label_names(situations)
    assert len(names) == 32 and "sad" in names
    s = load_situations("train", situations)
    assert len(s) == 60 and len(s.aug_texts) == 60
    assert {names[i] for i in s.labels} == set(CUES)


def test_load_situations_errors(tmp_path, situations):
    from empo.sem.data import load_situations

    with pytest.raises(DataError, match=r"label_map\.json"):
        load_situations("train", tmp_path / "nowhere")
    with pytest.raises(DataError, match="unknown split"):
        load_situations("dev", situations)
    (situations / "valid.csv").write_text("text,aug_text,label\nhello,hi,99\n")
    with pytest.raises(DataError, match=r"valid.csv:2: label 99"):
        load_situations("valid", situations)


# -- the linear probe ------------------------------------------------------------------------------------------
def test_softmax_regression_separates_and_folds_standardisation():
    import torch

    from empo.sem.train import fit_softmax_regression

    torch.manual_seed(0)
    centers = torch.tensor([[5.0, 0.0, 100.0], [0.0, 5.0, 100.0], [-5.0, -5.0, 100.0]])
    y = torch.arange(3).repeat(50)
    x = centers[y] + torch.randn(150, 3) * torch.tensor([1.0, 1.0, 0.01])
    head = fit_softmax_regression(x, y, 3, l2=1e-3, max_iter=50)
    assert (head(x).argmax(-1) == y).float().mean() > 0.97  # raw features in, standardisation inside


# -- a tiny encoder --------------------------------------------------------------------------------------------
def build_tiny_encoder(out: Path) -> Path:
    """A one-layer, 16-wide BERT over the tiny tokenizer's vocabulary, saved to ``out`` (a fraction of a second)."""
    import torch
    from transformers import BertConfig, BertModel

    tok = build_tiny_tokenizer()
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
    )
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


def _cfg(situations: Path, encoder: Path, **kw):
    from empo.sem.train import SemTrainConfig

    base = {
        "encoder": str(encoder),
        "data": str(situations),
        "device": "cpu",
        "l2_grid": [1e-2],
        "probe_max_iter": 30,
    }
    return SemTrainConfig(**{**base, **kw})


def test_train_head_save_load_roundtrip(tmp_path, situations, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    from empo.sem.model import is_classifier_dir, load_classifier
    from empo.sem.train import train_classifier

    out = tmp_path / "clf"
    metrics = train_classifier(_cfg(situations, tiny_encoder_dir), out, evaluate=False)
    assert is_classifier_dir(out)
    assert not (out / "encoder").exists()  # a frozen encoder is referenced, not copied
    card = (out / "README.md").read_text()
    assert "ed_situations" in card and "top-1" in card
    assert metrics["valid"]["n"] == 20
    # The cue words are trivial: even a random tiny encoder + a probe separates them well.
    assert metrics["valid"]["top3"] > 0.6

    clf = load_classifier(out, device="cpu")
    assert len(clf.labels) == 32
    probs = clf.predict_proba(["i was so sad today", "my friend was proud", "oh"])
    assert probs.shape == (3, 32)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    # embeddings were cached: a second training reads them back
    assert list((tmp_path / "cache" / "sem" / "embeddings").glob("*.pt"))
    # batching by length must not change results
    texts = ["i", "i was so sad today and my friend was not happy", "proud"]
    np.testing.assert_allclose(
        clf.predict_proba(texts, batch_size=1), clf.predict_proba(texts, batch_size=3), atol=1e-5
    )
    # refuses to overwrite
    with pytest.raises(EmpoError, match="already exists"):
        train_classifier(_cfg(situations, tiny_encoder_dir), out, evaluate=False)


def test_finetune_changes_encoder_and_saves_it(tmp_path, situations, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    import torch
    from transformers import AutoModel

    from empo.sem.model import load_classifier
    from empo.sem.train import fit_classifier, save_classifier_run

    cfg = _cfg(situations, tiny_encoder_dir, mode="finetune", epochs=2, batch_size=16, lr=1e-3)
    clf, info = fit_classifier(cfg)
    assert [h["epoch"] for h in info["finetune_history"]] == [0, 1, 2]
    before = AutoModel.from_pretrained(tiny_encoder_dir)
    changed = any(
        not torch.equal(p, q)
        for p, q in zip(before.state_dict().values(), clf.encoder.state_dict().values(), strict=True)
    )
    assert changed or info["finetune_best_epoch"] == 0
    out = tmp_path / "ft"
    save_classifier_run(clf, cfg, info, {"valid": info["valid"]}, out)
    assert (out / "encoder" / "config.json").is_file()
    again = load_classifier(out, device="cpu")
    text = ["i was so lonely today"]
    np.testing.assert_allclose(again.predict_proba(text), clf.predict_proba(text), atol=1e-5)


def test_evaluate_on_situations_and_dialogues(tmp_path, situations, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    from empo.sem.evaluate import evaluate_loaded, format_report
    from empo.sem.train import fit_classifier

    clf, _ = fit_classifier(_cfg(situations, tiny_encoder_dir))
    m = evaluate_loaded(clf, data=situations, dialogues="sample")
    assert m["situations_test"]["n"] == 20
    assert m["dialogues_test_first_turn"]["n"] == m["dialogues_test_user_turns"]["n"] > 0
    report = format_report(m)
    assert "MoEL" in report and "situations_test" in report


def test_unknown_folder_is_a_clear_error(tmp_path):
    from empo.sem.model import load_classifier

    with pytest.raises(EmpoError, match="empo sem train"):
        load_classifier(tmp_path)


def test_default_classifier_is_trained_on_first_need(tmp_path, tiny_encoder_dir, monkeypatch):
    # The data root holds only the tiny situations, so the dialogue part falls back to ED's embedded sample.
    situations = write_situations(tmp_path / "data" / "ed_situations")
    monkeypatch.setenv("EMPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    import empo.sem.model as model

    calls = []

    def tiny_default():
        calls.append(1)
        return _cfg(situations, tiny_encoder_dir)

    monkeypatch.setattr(model, "default_train_config", tiny_default)
    clf = model.get_classifier(None, device="cpu")
    assert model.is_classifier_dir(tmp_path / "cache" / "sem" / "default")
    assert len(clf.labels) == 32
    model.get_classifier("default", device="cpu")
    assert calls == [1]  # reused the second time


# -- the CLI ---------------------------------------------------------------------------------------------------
def test_cli_train_evaluate_predict(tmp_path, situations, tiny_encoder_dir, monkeypatch):
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    from empo.cli import app

    out = tmp_path / "cli-clf"
    res = runner.invoke(
        app,
        ["sem", "train", "--out", str(out), "--encoder", str(tiny_encoder_dir), "--data", str(situations),
         "--device", "cpu", "--set", "l2_grid=[1e-2]", "--set", "probe_max_iter=30", "--no-eval"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "valid" in res.output
    res = runner.invoke(
        app, ["sem", "evaluate", str(out), "--data", str(situations), "--dialogues", "sample",
              "--json", str(tmp_path / "m.json")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "top-1" in res.output and "dialogues_test_first_turn" in res.output
    assert json.loads((tmp_path / "m.json").read_text())["situations_test"]["n"] == 20
    res = runner.invoke(app, ["sem", "predict", "i was so sad today", "-c", str(out)])
    assert res.exit_code == 0, res.output
    assert "emotions:" in res.output and "cause words:" in res.output
    # errors are one line, exit 1
    res = runner.invoke(app, ["sem", "evaluate", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "error" in res.output
    res = runner.invoke(app, ["sem", "train", "--out", str(out), "--set", "typo=1"])
    assert res.exit_code == 1 and "typo" in res.output


# -- the real thing --------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_real_minilm_head_beats_the_dialogue_anchor(tmp_path, monkeypatch):
    """Frozen MiniLM + probe on the shared ed_situations: well above chance and above the ED dialogue anchor on
    the situations (several minutes on 2 CPU cores; embeddings are cached in $EMPO_CACHE_DIR)."""
    from empo.paths import data_path
    from empo.sem.train import SemTrainConfig, train_classifier

    if not (data_path("ed_situations") / "label_map.json").is_file():
        pytest.skip("shared ed_situations not available")
    m = train_classifier(SemTrainConfig(l2_grid=[3e-3]), tmp_path / "clf")
    assert m["situations_test"]["top1"] > 0.41
