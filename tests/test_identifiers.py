"""Empathy identifiers: data checks, metrics, train -> save -> load -> predict, CLI, default location.

A tiny BERT (2 layers, 32-d) and a word-level tokenizer are built in a fixture, so nothing here needs the hub.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from empo.cli import app
from empo.errors import DataError, EmpoError
from empo.identifiers import MECHANISMS, load_identifiers
from empo.identifiers.config import IdentifiersConfig
from empo.identifiers.data import rationale_char_mask, read_epitome_csv, split_rationales
from empo.identifiers.metrics import score_levels

runner = CliRunner()

COLUMNS = [
    "sp_id",
    "seeker_post",
    "response_post",
    "ER_level",
    "ER_rationales",
    "IP_level",
    "IP_rationales",
    "EX_level",
    "EX_rationales",
]
ROWS = [
    # seeker, response, ER, ER rationale, IP, IP rationale, EX, EX rationale
    ("i feel so lonely tonight", "i am so sorry you feel this way", 2, "i am so sorry|", 0, "", 0, ""),
    ("my dog died today", "that is terrible , i am sorry", 2, "i am sorry|", 0, "", 0, ""),
    ("i failed my exam", "what happened with the exam ?", 0, "", 0, "", 2, "what happened with the exam ?|"),
    ("i lost my job", "how do you feel about the job ?", 0, "", 0, "", 2, "how do you feel|"),
    (
        "nobody cares about me",
        "i know how that feels , i was lonely too",
        0,
        "",
        2,
        "i know how that feels|",
        0,
        "",
    ),
    ("my family hates me", "i had the same with my family", 0, "", 2, "i had the same|", 0, ""),
    ("i am nervous about work", "good luck", 1, "good luck|", 0, "", 0, ""),
    ("i feel bad today", "hope your day gets better", 1, "hope|", 1, "your day|", 1, "better|"),
    ("i am so sad", "why are you sad ?", 0, "", 0, "", 2, "why are you sad ?|"),
    ("my friend left", "that is so sad , i understand", 1, "so sad|", 2, "i understand|", 0, ""),
    ("i cannot sleep", "try to rest", 0, "", 0, "", 0, ""),
    (
        "i feel terrible",
        "i am here for you , what is wrong ?",
        2,
        "i am here for you|",
        0,
        "",
        1,
        "what is wrong ?|",
    ),
]
VOCAB_WORDS = sorted({w for r in ROWS for text in r[:2] for w in text.split()} | {"[UNK]"} - {"[UNK]"})


def write_csv(path: Path, rows=ROWS, columns=COLUMNS) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i, r in enumerate(rows):
            full = {
                "sp_id": f"s{i}",
                "seeker_post": r[0],
                "response_post": r[1],
                "ER_level": r[2],
                "ER_rationales": r[3],
                "IP_level": r[4],
                "IP_rationales": r[5],
                "EX_level": r[6],
                "EX_rationales": r[7],
            }
            w.writerow([full[c] for c in columns])
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    """A saved 2-layer BERT + word-level fast tokenizer with [CLS]/[SEP] pair templates."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out = tmp_path_factory.mktemp("tiny-bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {t: i for i, t in enumerate([*specials, *VOCAB_WORDS, ",", "?", ".", "!", "'"])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture()
def data_files(tmp_path) -> dict[str, Path]:
    return {
        "train": write_csv(tmp_path / "train.csv"),
        "val": write_csv(tmp_path / "val.csv", ROWS[:8]),
        "test": write_csv(tmp_path / "test.csv", ROWS[4:]),
    }


def tiny_config(encoder: Path, files: dict[str, Path], **kw) -> IdentifiersConfig:
    base = dict(
        encoder=str(encoder),
        train_csv=files["train"],
        val_csv=files["val"],
        test_csv=files["test"],
        epochs=2,
        batch_size=4,
        device="cpu",
        max_response_tokens=16,
        max_seeker_tokens=8,
        head_lr=1e-2,
    )
    return IdentifiersConfig(**{**base, **kw})


@pytest.fixture()
def trained(tiny_encoder, data_files, tmp_path) -> Path:
    from empo.identifiers.train import train_identifiers

    out = tmp_path / "ident"
    train_identifiers(tiny_config(tiny_encoder, data_files), out)
    return out


# ------------------------------------------------------------------------------------------------ data


def test_read_epitome_csv(data_files):
    data = read_epitome_csv(data_files["train"])
    assert len(data) == len(ROWS)
    assert data.levels["ER"].tolist()[:3] == [2, 2, 0]
    assert data.rationales["EX"][2] == ["what happened with the exam ?"]


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DataError, match=r"nope\.csv not found"):
        read_epitome_csv(tmp_path / "nope.csv")


def test_missing_column_names_file_and_column(tmp_path):
    path = write_csv(tmp_path / "bad.csv", columns=[c for c in COLUMNS if c != "IP_level"])
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) IP_level"):
        read_epitome_csv(path)


def test_bad_level_names_row_and_column(tmp_path):
    rows = [*ROWS[:2], ("a", "b", 3, "", 0, "", 0, "")]
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError, match=r"bad\.csv: row 3 .*column ER_level is '3'"):
        read_epitome_csv(path)


def test_empty_response_and_empty_file(tmp_path):
    path = write_csv(tmp_path / "e.csv", [("a", "  ", 0, "", 0, "", 0, "")])
    with pytest.raises(DataError, match="response_post is empty"):
        read_epitome_csv(path)
    with pytest.raises(DataError, match="no rows"):
        read_epitome_csv(write_csv(tmp_path / "h.csv", []))


def test_rationale_helpers():
    assert split_rationales("a b|c|") == ["a b", "c"]
    assert split_rationales("") == []
    mask = rationale_char_mask("xx ab yy ab", ["ab", "zz"])
    assert mask.nonzero()[0].tolist() == [3, 4, 9, 10]


# ------------------------------------------------------------------------------------------------ metrics


def test_score_levels_hand_computed():
    s = score_levels(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]))
    assert s["accuracy"] == pytest.approx(0.75)
    # F1: level 0 = 2*1*0.5/1.5 = 2/3; level 1 = 2*0.5*1/1.5 = 2/3; level 2 = 1
    assert s["f1_per_level"] == pytest.approx([2 / 3, 2 / 3, 1.0])
    assert s["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert s["confusion"] == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    # a level that never occurs nor is predicted counts as F1 0 in the macro average
    assert score_levels(np.array([0, 0]), np.array([0, 0]))["macro_f1"] == pytest.approx(1 / 3)


def test_calibration_shifts_and_normalises():
    from empo.identifiers.model import apply_calibration, fit_calibration

    p = np.array([[0.6, 0.3, 0.1], [0.5, 0.1, 0.4], [0.45, 0.1, 0.45]])
    q = apply_calibration(p, [0.0, 1.0, 0.0])
    assert q.sum(1) == pytest.approx(np.ones(3))
    assert q[0, 1] > p[0, 1]
    assert apply_calibration(p, None) is p
    y = np.array([1, 2, 2])
    bias = fit_calibration(p, y, "accuracy")
    assert (apply_calibration(p, bias).argmax(1) == y).all()


# ------------------------------------------------------------------------------------------------ train / load


def test_train_writes_folder_and_card(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"identifiers.json", "card.md", "card.json", "member-0.safetensors", "encoder"} <= names
    card = json.loads((trained / "card.json").read_text())
    assert set(card["test_scores"]) >= set(MECHANISMS)
    assert card["val_scores"]["ER"]["n"] == 8
    assert card["config"]["epochs"] == 2 and card["versions"]["torch"]
    assert card["data"]["train"]["rows"] == len(ROWS)
    assert "Test (empo_splits/test.csv" in (trained / "card.md").read_text()


def test_load_predict_shapes_and_row_sums(trained):
    ident = load_identifiers(trained, train_if_missing=False, device="cpu")
    assert load_identifiers(trained, train_if_missing=False, device="cpu") is ident  # loaded once
    seekers = ["i feel so lonely", "my dog died", "i failed"]
    responses = ["i am so sorry", "what happened ?", "words never seen before zzz"]
    probs = ident.predict_proba(seekers, responses)
    assert set(probs) == set(MECHANISMS)
    for p in probs.values():
        assert p.shape == (3, 3)
        assert p.sum(1) == pytest.approx(np.ones(3))
    levels = ident.predict(seekers, responses)
    assert all(set(v.tolist()) <= {0, 1, 2} and v.shape == (3,) for v in levels.values())
    assert all(p.shape == (0, 3) for p in ident.predict_proba([], []).values())
    with pytest.raises(EmpoError, match="one seeker per response"):
        ident.predict_proba(["a"], ["b", "c"])


def test_weights_changed_by_training(trained, tiny_encoder):
    from safetensors.torch import load_file

    before = load_file(str(tiny_encoder / "model.safetensors"))
    after = load_file(str(trained / "member-0.safetensors"))
    key = next(k for k in before if "layer.1.output.dense.weight" in k)
    assert not np.allclose(before[key].numpy(), after["encoder." + key].numpy())


@pytest.mark.parametrize("inp", ["bi", "response"])
def test_other_inputs_train_and_reload(inp, tiny_encoder, data_files, tmp_path):
    from empo.identifiers.model import Identifiers
    from empo.identifiers.train import train_identifiers

    out = tmp_path / inp
    train_identifiers(
        tiny_config(
            tiny_encoder, data_files, input=inp, epochs=1, pooling="cls_mean", seeds=[0, 1], calibrate=True
        ),
        out,
    )
    ident = Identifiers.load(out, device="cpu")
    assert len(ident.members) == 2
    p = ident.predict_proba(["i feel sad"], ["i am sorry"])
    assert all(v.shape == (1, 3) and v.sum() == pytest.approx(1.0) for v in p.values())


def test_separate_networks_per_mechanism(tiny_encoder, data_files, tmp_path):
    from empo.identifiers.train import fit

    res = fit(tiny_config(tiny_encoder, data_files, separate=True, epochs=1))
    assert [m.mechanisms for m in res.identifiers.members] == [["ER"], ["IP"], ["EX"]]


def test_training_is_deterministic(tiny_encoder, data_files):
    from empo.identifiers.train import fit

    cfg = tiny_config(tiny_encoder, data_files, epochs=1)
    a = fit(cfg).identifiers.predict_proba(["i am sad"], ["so sorry"])
    b = fit(cfg).identifiers.predict_proba(["i am sad"], ["so sorry"])
    for m in MECHANISMS:
        np.testing.assert_allclose(a[m], b[m], rtol=1e-6)


def test_refuses_to_overwrite(trained, tiny_encoder, data_files):
    from empo.identifiers.train import train_identifiers

    with pytest.raises(EmpoError, match="already exists"):
        train_identifiers(tiny_config(tiny_encoder, data_files), trained)


def test_bad_training_csv_fails_before_training(tiny_encoder, data_files, tmp_path):
    from empo.identifiers.train import train_identifiers

    bad = write_csv(tmp_path / "bad.csv", columns=[c for c in COLUMNS if c != "EX_level"])
    with pytest.raises(DataError, match=r"bad\.csv: missing column\(s\) EX_level"):
        train_identifiers(tiny_config(tiny_encoder, {**data_files, "train": bad}), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ default location


def test_empty_dir_without_training_raises(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmpoError, match=r"no empathy identifiers found at .*empty.*empo identifiers train"):
        load_identifiers(empty, train_if_missing=False)


def test_default_location_respects_cache_dir(monkeypatch, tmp_path):
    from empo.identifiers import default_identifiers_dir

    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    assert default_identifiers_dir() == tmp_path / "cache" / "identifiers" / "default"
    with pytest.raises(EmpoError, match="no empathy identifiers found"):
        load_identifiers(train_if_missing=False)


def test_train_if_missing_trains_into_the_default(monkeypatch, tmp_path, tiny_encoder, data_files):
    import empo.identifiers as ident_mod
    from empo.identifiers import config as config_mod

    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))

    def tiny(**kw):  # the default configuration, on the tiny encoder and data
        return tiny_config(tiny_encoder, data_files, **{"epochs": 1, **kw})

    monkeypatch.setattr(config_mod, "IdentifiersConfig", tiny)
    ident = ident_mod.load_identifiers(device="cpu")
    assert (tmp_path / "cache" / "identifiers" / "default" / "identifiers.json").is_file()
    assert ident.predict(["a"], ["i am sorry"])["ER"].shape == (1,)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_train_and_evaluate(tiny_encoder, data_files, tmp_path):
    out = tmp_path / "cli-ident"
    res = runner.invoke(
        app,
        [
            "identifiers",
            "train",
            "--encoder",
            str(tiny_encoder),
            "--train",
            str(data_files["train"]),
            "--val",
            str(data_files["val"]),
            "--test",
            str(data_files["test"]),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--set",
            "identifiers.batch_size=4",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "card.json").is_file()
    js = tmp_path / "scores.json"
    res = runner.invoke(
        app,
        [
            "identifiers",
            "evaluate",
            str(out),
            "--data",
            str(data_files["test"]),
            "--json",
            str(js),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "macro-F1" in res.output and "EX" in res.output
    scores = json.loads(js.read_text())["scores"]
    assert set(scores) == {*MECHANISMS, "mean"}
    assert 0.0 <= scores["ER"]["accuracy"] <= 1.0


def test_cli_errors_are_one_line(tmp_path, data_files):
    res = runner.invoke(app, ["identifiers", "evaluate", str(tmp_path)])
    assert res.exit_code == 1
    assert "no empathy identifiers found" in res.output
    res = runner.invoke(
        app, ["identifiers", "train", "--train", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]
    )
    assert res.exit_code == 1
    assert "missing.csv not found" in res.output


# ------------------------------------------------------------------------------------------------ real data (slow)


@pytest.mark.slow
def test_shared_splits_read():
    from empo.identifiers.data import default_split

    if not default_split("test").is_file():
        pytest.skip("shared EPITOME splits not present")
    assert len(read_epitome_csv(default_split("test"))) == 302
    assert len(read_epitome_csv(default_split("train"))) == 2418


@pytest.mark.slow
def test_minilm_short_training(tmp_path):
    """The real encoder on 64 real pairs for one epoch: the whole path works with MiniLM."""
    from empo.identifiers.data import default_split
    from empo.identifiers.train import fit

    if not default_split("train").is_file():
        pytest.skip("shared EPITOME splits not present")
    data = read_epitome_csv(default_split("train"))
    rows = [
        (
            data.seekers[i],
            data.responses[i],
            *(
                x
                for m in ("ER", "IP", "EX")
                for x in (int(data.levels[m][i]), "|".join(data.rationales[m][i]))
            ),
        )
        for i in range(64)
    ]
    small = write_csv(tmp_path / "small.csv", rows)
    res = fit(IdentifiersConfig(train_csv=small, val_csv=small, epochs=1, device="cpu"))
    p = res.identifiers.predict_proba(["I feel alone"], ["I'm so sorry, what happened?"])
    assert all(v.shape == (1, 3) for v in p.values())


def test_recipe_matches_the_defaults():
    from empo.paths import REPO_ROOT
    from empo.recipe import load_recipe

    assert load_recipe(REPO_ROOT / "recipes" / "identifiers.yaml").identifiers == IdentifiersConfig()


def test_metrics_match_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        a, b = rng.integers(0, 3, n), rng.integers(0, 3, n)
        s = score_levels(a, b)
        for avg in ("macro", "weighted"):
            ref = f1_score(a, b, labels=[0, 1, 2], average=avg, zero_division=0)
            assert s[f"{avg}_f1"] == pytest.approx(ref)


def test_missing_epitome_skips_the_default_identifiers(monkeypatch, tmp_path):
    """Outside a data root with EPITOME (e.g. `make reproduce` on a fresh machine) the default identifiers cannot be
    trained: load_identifiers says what is missing, and empo eval skips the identifier metrics with that reason."""
    import empo.identifiers as ident_mod
    from empo.evaluation.config import EvalConfig
    from empo.evaluation.scoring import load_default_identifiers

    monkeypatch.setenv("EMPO_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("EMPO_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ident_mod.MissingTrainingData, match=r"empo_splits.*train\.csv"):
        ident_mod.load_identifiers()
    ident, reason = load_default_identifiers(EvalConfig())
    assert ident is None and "EMPO_DATA_DIR" in reason
    folder = tmp_path / "cache" / "identifiers" / "default"
    assert not folder.exists() or not any(folder.iterdir())  # nothing half-made
