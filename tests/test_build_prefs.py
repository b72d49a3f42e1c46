"""build-prefs: every strategy, cut modes, formats, determinism, the length filter, tar.gz and bad input."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from empo.cli import app
from empo.data.chat import DEFAULT_SYSTEM_PROMPT, dialogue_messages, listener_indices
from empo.data.ed import COLUMNS, EMOTIONS, SAMPLE_DIR, load_ed
from empo.errors import EmpoError
from empo.paths import REPO_ROOT
from empo.prefs.build import build_prefs
from empo.prefs.config import PrefsConfig
from empo.prefs.emotions import OPPOSITES, VALENCE_AROUSAL, distance_matrix
from empo.prefs.strategies import STRATEGIES, Distance, distant_emotions
from empo.recipe import load_recipe

runner = CliRunner()
SPLITS = ("train", "valid", "test")


def build(tmp_path: Path, name: str = "out", **kw) -> tuple[Path, dict]:
    out = tmp_path / name
    stats = build_prefs(PrefsConfig(data_dir=str(SAMPLE_DIR), **kw), out)
    return out, stats


def read(out: Path, split: str = "train") -> list[dict]:
    return pl.read_parquet(out / f"{split}.parquet").to_dicts()


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_emotion_geometry_covers_all_32():
    assert set(OPPOSITES) == set(EMOTIONS) == set(VALENCE_AROUSAL)
    for e, targets in OPPOSITES.items():
        assert targets and e not in targets and set(targets) <= set(EMOTIONS)
        for f in targets:  # an opposite always has clearly different valence
            assert abs(VALENCE_AROUSAL[e][0] - VALENCE_AROUSAL[f][0]) >= 0.3, (e, f)
    d = np.asarray(distance_matrix())
    assert d.shape == (32, 32) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)


@pytest.mark.parametrize("strategy", ["opposite", "distance", "hard"])
@pytest.mark.parametrize("fmt", ["dpo", "kto"])
def test_every_strategy_builds_the_embedded_sample(tmp_path: Path, strategy: str, fmt: str):
    out, stats = build(tmp_path, strategy=strategy, format=fmt)
    assert sorted(p.name for p in out.iterdir()) == [
        "stats.json",
        "test.parquet",
        "train.parquet",
        "valid.parquet",
    ]
    assert json.loads((out / "stats.json").read_text()) == stats
    ed = load_ed(SAMPLE_DIR)
    for split in SPLITS:
        rows = read(out, split)
        convs = {d.conv_id: d for d in ed[split]}
        assert rows and stats["splits"][split]["rows"] == len(rows)
        for r in rows:
            assert r["strategy"] == strategy and r["conv_id"] in convs
            assert r["prompt"][0] == {"role": "system", "content": DEFAULT_SYSTEM_PROMPT}
            assert r["prompt"][1]["role"] == "user" and r["prompt"][-1]["role"] == "user"
        if fmt == "kto":
            assert set(rows[0]) >= {"prompt", "completion", "label", "conv_id", "emotion", "strategy"}
            good = [r for r in rows if r["label"]]
            assert len(good) == len(convs)  # one desirable row per dialogue (last cut)
            for r in good:
                d = convs[r["conv_id"]]
                assert r["completion"] == [{"role": "assistant", "content": d.turns[r["cut"]].text}]
            for r in rows:
                if not r["label"]:  # undesirable rows come from other dialogues of the same split
                    assert r["completion_conv_id"] != r["conv_id"] and r["completion_conv_id"] in convs
            continue
        per_cut = Counter((r["conv_id"], r["cut"]) for r in rows)
        assert max(per_cut.values()) <= 3
        for r in rows:
            d = convs[r["conv_id"]]
            assert r["cut"] == listener_indices(d)[-1]
            assert r["chosen"] == [{"role": "assistant", "content": d.turns[r["cut"]].text}]
            # Never the same dialogue, never another split, never the same emotion.
            assert r["rejected_conv_id"] != r["conv_id"] and r["rejected_conv_id"] in convs
            rej = convs[r["rejected_conv_id"]]
            assert r["rejected"] == [{"role": "assistant", "content": rej.turns[r["rejected_cut"]].text}]
            assert r["rejected_emotion"] == rej.emotion != r["emotion"]
            if strategy == "opposite":
                assert r["rejected_emotion"] in OPPOSITES[r["emotion"]]
            if strategy == "hard":
                allowed = distant_emotions(PrefsConfig().hard_min_distance_quantile)
                assert allowed[EMOTIONS.index(r["emotion"]), EMOTIONS.index(r["rejected_emotion"])]
        # Distinct rejected responses for one prompt.
        seen = Counter((r["conv_id"], r["cut"], r["rejected_conv_id"]) for r in rows)
        assert max(seen.values()) == 1


@pytest.mark.parametrize("strategy", ["opposite", "hard"])
def test_prompts_are_built_like_dialogue_messages(tmp_path: Path, strategy: str):
    out, stats = build(tmp_path, strategy=strategy, cuts="all", max_context_turns=2, system_prompt="Be kind.")
    ed = {d.conv_id: d for d in load_ed(SAMPLE_DIR)["train"]}
    rows = read(out)
    cuts = {(r["conv_id"], r["cut"]) for r in rows}
    assert cuts == {(c, i) for c, d in ed.items() for i in listener_indices(d)}
    assert stats["splits"]["train"]["cuts"] == len(cuts) > len(ed)
    for r in rows:
        assert r["prompt"] == dialogue_messages(ed[r["conv_id"]], r["cut"], "Be kind.", max_context_turns=2)
        # The rejected response is always a dialogue's LAST listener turn, whatever the cut mode.
        assert r["rejected_cut"] == listener_indices(ed[r["rejected_conv_id"]])[-1]
    out2, _ = build(tmp_path, "nosys", system_prompt="")
    assert read(out2)[0]["prompt"][0]["role"] == "user"


def test_same_seed_same_bytes_other_seed_other_pairs(tmp_path: Path):
    for strategy in ("opposite", "hard"):
        a, _ = build(tmp_path, f"{strategy}-a", strategy=strategy, seed=3)
        b, _ = build(tmp_path, f"{strategy}-b", strategy=strategy, seed=3)
        c, _ = build(tmp_path, f"{strategy}-c", strategy=strategy, seed=4)
        assert digest(a) == digest(b)
        key = lambda out: [(r["conv_id"], r["rejected_conv_id"]) for r in read(out)]  # noqa: E731
        assert key(a) != key(c)


def test_distance_prefers_far_emotions():
    # Anchors of one emotion, a pool with 40 dialogues of every emotion: the drawn emotions follow d ** power.
    pool = pl.DataFrame(
        {
            "p": np.arange(32 * 40),
            "conv_id": [f"p{i}" for i in range(32 * 40)],
            "emo": np.repeat(np.arange(32), 40),
        }
    )
    joy = EMOTIONS.index("joyful")
    anchors = pl.DataFrame(
        {"a": np.arange(3000), "conv_id": [f"a{i}" for i in range(3000)], "emo": [joy] * 3000}
    )
    picks = Distance(PrefsConfig()).pick(anchors, pool, 3, np.random.default_rng(0))
    assert picks.height == 9000 and picks.group_by("a").agg(pl.col("p").n_unique())["p"].min() == 3
    freq = np.bincount(pool["emo"].to_numpy()[picks["p"].to_numpy()], minlength=32) / picks.height
    expected = np.asarray(distance_matrix())[joy] ** 2
    expected /= expected.sum()
    assert freq[joy] == 0
    assert np.corrcoef(freq, expected)[0, 1] > 0.95


def test_length_filter_in_words_and_tokens(tmp_path: Path, tiny_model_dir: Path):
    _, stats = build(tmp_path, max_length_percentile=50)
    lf = stats["length_filter"]
    assert lf["unit"] == "words" and lf["threshold"] > 0
    train = stats["splits"]["train"]
    assert (
        train["dropped_by_length"] > 0 and train["pairs"] + train["dropped_by_length"] == train["pairs_drawn"]
    )
    _, stats = build(tmp_path, "tok", max_tokens=60, tokenizer=str(tiny_model_dir))
    assert stats["length_filter"]["unit"] == "tokens" and stats["length_filter"]["threshold"] == 60
    assert sum(s["dropped_by_length"] for s in stats["splits"].values()) > 0


def test_cli_tar_gz_recipe_and_summary(tmp_path: Path):
    archive = tmp_path / "empatheticdialogues.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in SPLITS:
            tar.add(SAMPLE_DIR / f"{split}.csv", arcname=f"empatheticdialogues/{split}.csv")
    res = runner.invoke(
        app,
        ["build-prefs", "--data-dir", str(archive), "--out", str(tmp_path / "tgz"), "--recipe",
         str(REPO_ROOT / "recipes" / "build-prefs.yaml"), "--set", "prefs.max_length_percentile=null", "-k", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "pairs per emotion" in res.output
    folder, _ = build(tmp_path, "folder", pairs_per_dialogue=2)
    assert digest(tmp_path / "tgz") == {
        **digest(folder),
        "stats.json": digest(tmp_path / "tgz")["stats.json"],
    }
    stats = json.loads((tmp_path / "tgz" / "stats.json").read_text())
    assert stats["config"]["pairs_per_dialogue"] == 2 and stats["source"] == str(archive)


def test_every_recipe_of_this_stage_validates():
    r = load_recipe(REPO_ROOT / "recipes" / "build-prefs.yaml")
    assert r.prefs.strategy in STRATEGIES and r.prefs.max_length_percentile == 95


def _bad(tmp_path: Path, kind: str) -> Path:
    """An ED folder broken in one way."""
    folder = tmp_path / "ed"
    folder.mkdir()
    for split in SPLITS:
        (folder / f"{split}.csv").write_bytes((SAMPLE_DIR / f"{split}.csv").read_bytes())
    train = folder / "train.csv"
    lines = train.read_text().split("\n")
    if kind == "missing folder":
        return tmp_path / "nowhere"
    if kind == "missing file":
        (folder / "test.csv").unlink()
    elif kind == "missing column":
        lines[0] = ",".join(c for c in COLUMNS if c != "context")
    elif kind == "unknown emotion":
        lines[5] = lines[5].replace(lines[5].split(",")[2], "elated", 1)
    elif kind == "empty file":
        lines = []
    elif kind == "malformed line":
        lines[7] = ",".join(lines[7].split(",")[:4])
    train.write_text("\n".join(lines))
    return folder


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing folder", r"nowhere: no such folder or file"),
        ("missing file", r"test\.csv: file not found"),
        ("missing column", r"train\.csv, line 1: missing column 'context'"),
        ("unknown emotion", r"train\.csv, line 6: unknown emotion label 'elated'"),
        ("empty file", r"train\.csv: empty file"),
        ("malformed line", r"train\.csv, line 8: malformed row with 4 comma-separated field"),
    ],
)
def test_cli_bad_input_one_line_nonzero_nothing_written(tmp_path: Path, kind: str, message: str):
    import re

    source = _bad(tmp_path, kind)
    out = tmp_path / "prefs"
    res = runner.invoke(app, ["build-prefs", "--data-dir", str(source), "--out", str(out)])
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(message, res.output.replace("\n", "")), res.output
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prefs")]  # no temporary folder left


def test_cli_bad_settings(tmp_path: Path):
    res = runner.invoke(
        app, ["build-prefs", "--data-dir", "sample", "--out", str(tmp_path / "o"), "-s", "nope"]
    )
    assert res.exit_code == 1 and "unknown strategy 'nope'" in res.output and "opposite" in res.output
    res = runner.invoke(
        app, ["build-prefs", "--data-dir", "sample", "--out", str(tmp_path / "o"), "--format", "x"]
    )
    assert res.exit_code == 1 and "prefs.format" in res.output
    (tmp_path / "exists").mkdir()
    with pytest.raises(EmpoError, match="already exists"):
        build_prefs(PrefsConfig(data_dir="sample"), tmp_path / "exists")
