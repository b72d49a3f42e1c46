"""EmpatheticDialogues loader: the embedded sample, the raw format's quirks, tar.gz input, bad input, chat view."""

from __future__ import annotations

import tarfile
from collections import Counter
from pathlib import Path

import pytest

from empo.data.chat import DEFAULT_SYSTEM_PROMPT, dialogue_messages, listener_indices
from empo.data.ed import (
    COLUMNS,
    EMOTIONS,
    SAMPLE_DIR,
    Dialogue,
    Turn,
    load_ed,
    read_ed,
    resolve_ed_source,
)
from empo.errors import DataError
from empo.paths import data_path

HEADER = ",".join(COLUMNS)
SHARED_ED = data_path("empatheticdialogues")


def write_ed(folder: Path, train: str, valid: str | None = None, test: str | None = None) -> Path:
    """An ED folder whose train.csv is ``train`` (body lines; the header is added) and small valid/test."""
    folder.mkdir(parents=True, exist_ok=True)
    default = "v:1,1,sad,My cat died.,1,My cat died.,5|5|5_5|5|5,\nv:1,2,sad,My cat died.,2,I am sorry.,5|5|5_5|5|5,\n"
    for name, body in (("train", train), ("valid", valid or default), ("test", test or default)):
        (folder / f"{name}.csv").write_text(f"{HEADER}\n{body}", encoding="utf-8")
    return folder


def test_emotions_are_the_32_labels():
    assert len(EMOTIONS) == 32 == len(set(EMOTIONS))
    assert list(EMOTIONS) == sorted(EMOTIONS)


def test_embedded_sample_covers_every_emotion_in_raw_format():
    raw = (SAMPLE_DIR / "train.csv").read_text(encoding="utf-8")
    assert raw.startswith(HEADER + "\n") and "_comma_" in raw
    ed = load_ed("sample")
    for split, per_emotion in (("train", 2), ("valid", 1), ("test", 1)):
        dialogues = ed[split]
        counts = Counter(d.emotion for d in dialogues)
        assert set(counts) == set(EMOTIONS) and min(counts.values()) >= per_emotion, split
        for d in dialogues:
            assert 2 <= len(d.turns) <= 4
            assert [t.role for t in d.turns] == ["user", "assistant", "user", "assistant"][: len(d.turns)]
            assert d.situation and all(t.text == t.text.strip() and "_comma_" not in t.text for t in d.turns)
    assert read_ed("sample").reports["train"].skipped_rows == 0


def test_dialogue_records_and_comma_unescaping(tmp_path: Path):
    body = (
        "hit:1_conv:2,1,joyful,I got a puppy_comma_ finally! ,7,I got a puppy_comma_ finally!,5|5|5_5|5|5,\n"
        "hit:1_conv:2,2,joyful,I got a puppy_comma_ finally! ,8,Aww_comma_ what breed?,5|5|5_5|5|5,\n"
    )
    ed = load_ed(write_ed(tmp_path / "ed", body), splits=("train",))
    assert ed == {
        "train": [
            Dialogue(
                conv_id="hit:1_conv:2",
                split="train",
                emotion="joyful",
                situation="I got a puppy, finally!",
                turns=(Turn("user", "I got a puppy, finally!"), Turn("assistant", "Aww, what breed?")),
            )
        ]
    }


def test_release_quirks_are_repaired_or_counted(tmp_path: Path):
    ok = "5|5|5_5|5|5"
    body = "\r\n".join(
        [
            # stray whitespace everywhere
            f" a:1 , 1 , sad , Lost my keys.  ,1,  I lost my keys.  ,{ok},",
            # a trailing extra field (kept: the first 8 fields are right)
            f"a:1,2,sad,Lost my keys.,2,Oh no. Where did you see them last?,{ok},,extra|candidates",
            # an unescaped comma in the utterance, located by the self-evaluation field
            f"a:1,3,sad,Lost my keys.,1,At the gym, I think.,{ok},",
            # an unescaped comma in the situation, located by the speaker index
            f"b:1,1,proud,I won, at last.,3,I won the race!,{ok},",
            f"b:1,2,proud,I won, at last.,4,Congratulations!,{ok},",
            "",  # a blank line
            f"b:1,2,proud,I won at last.,4,A duplicate row.,{ok},",
            # extra fields that cannot be repaired (no speaker index anywhere): skipped and counted
            f"c:1,1,sad,x,y,z,w,{ok},q",
            # a gap: utterance 3 is missing, so utterance 4 cannot keep its role
            f"d:1,1,angry,Bad day.,5,What a bad day.,{ok},",
            f"d:1,2,angry,Bad day.,6,What happened?,{ok},",
            f"d:1,4,angry,Bad day.,6,Tell me more.,{ok},",
        ]
    )
    ed = read_ed(write_ed(tmp_path / "ed", body + "\r\n"), splits=("train",))
    rep = ed.reports["train"]
    assert rep.repaired_rows == 4
    assert rep.skipped == {
        "blank line": 1,
        "duplicate (conv_id, utterance_idx)": 1,
        "extra fields, not repairable": 1,
        "after a gap in utterance_idx": 1,
    }
    assert (rep.truncated_dialogues, rep.dropped_dialogues, rep.dialogues) == (1, 0, 3)
    d = {x.conv_id: x for x in load_ed(tmp_path / "ed", splits=("train",))["train"]}
    assert [t.text for t in d["a:1"].turns] == [
        "I lost my keys.",
        "Oh no. Where did you see them last?",
        "At the gym, I think.",
    ]
    assert d["a:1"].situation == "Lost my keys."
    assert d["b:1"].situation == "I won, at last." and d["b:1"].turns[1] == Turn(
        "assistant", "Congratulations!"
    )
    assert [t.role for t in d["d:1"].turns] == ["user", "assistant"]


def test_tar_gz_reads_like_the_folder(tmp_path: Path):
    archive = tmp_path / "empatheticdialogues.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for split in ("train", "valid", "test"):
            tar.add(SAMPLE_DIR / f"{split}.csv", arcname=f"empatheticdialogues/{split}.csv")
    assert load_ed(archive) == load_ed(SAMPLE_DIR)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("", r"train\.csv: empty file"),
        ("x:1,1,sad,s,1,hello\n", r"train\.csv, line 2: malformed row with 6"),
        (
            "x:1,one,sad,s,1,hello,5|5|5_5|5|5,\n",
            r"train\.csv, line 2: utterance_idx 'one' is not an integer",
        ),
        ("x:1,1,happyish,s,1,hello,5|5|5_5|5|5,\n", r"train\.csv, line 2: unknown emotion label 'happyish'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, body: str, match: str):
    folder = write_ed(tmp_path / "ed", body)
    if not body:
        (folder / "train.csv").write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_ed(folder)


def test_bad_sources_and_headers(tmp_path: Path):
    with pytest.raises(DataError, match="no such folder or file"):
        load_ed(tmp_path / "nowhere")
    folder = write_ed(tmp_path / "ed", "")
    (folder / "valid.csv").unlink()
    with pytest.raises(DataError, match=r"valid\.csv: file not found"):
        load_ed(folder)
    (folder / "train.csv").write_text(HEADER.replace(",utterance,", ",text,") + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv, line 1: missing column 'utterance'"):
        load_ed(folder, splits=("train",))
    (folder / "train.csv").write_text(HEADER + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv: empty file \(a header but no rows\)"):
        load_ed(folder, splits=("train",))
    not_ed = tmp_path / "notes.txt"
    not_ed.write_text("hello")
    with pytest.raises(DataError, match="neither a folder nor a tar archive"):
        load_ed(not_ed)


def test_default_source_falls_back_to_the_sample(data_dir_env: Path):
    assert resolve_ed_source(None) == SAMPLE_DIR
    (data_dir_env / "empatheticdialogues").mkdir(parents=True)
    assert resolve_ed_source(None) == data_dir_env / "empatheticdialogues"


@pytest.mark.skipif(not (SHARED_ED / "train.csv").is_file(), reason="shared ED subset not present")
def test_shared_subset_loads_whole():
    ed = read_ed(SHARED_ED)
    assert {s: r.dialogues for s, r in ed.reports.items()} == {"train": 1799, "valid": 267, "test": 237}
    assert sum(r.turns for r in ed.reports.values()) == 9879  # every line of the three files
    assert all(r.skipped_rows == 0 for r in ed.reports.values())


def test_chat_view():
    d = Dialogue(
        "c",
        "train",
        "sad",
        "s",
        tuple(
            Turn(r, t) for r, t in [("user", "u0"), ("assistant", "a1"), ("user", "u2"), ("assistant", "a3")]
        ),
    )
    assert listener_indices(d) == [1, 3]
    assert dialogue_messages(d, 3) == [
        {"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
        {"role": "user", "content": "u0"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
    ]
    # Two turns back would start on the assistant turn: the context starts at the next user turn instead.
    assert dialogue_messages(d, 3, system_prompt=None, max_context_turns=2) == [
        {"role": "user", "content": "u2"}
    ]
    assert dialogue_messages(d, 3, system_prompt=None, max_context_turns=3)[0] == {
        "role": "user",
        "content": "u0",
    }
    odd = Dialogue(
        "o", "train", "sad", "s", (Turn("assistant", "hi"), Turn("user", "u"), Turn("assistant", "a"))
    )
    assert listener_indices(odd) == [2]
    with pytest.raises(ValueError):
        dialogue_messages(d, 0)
