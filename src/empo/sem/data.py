"""The labelled ED situations (``ed_situations/``: ``text,aug_text,label`` per split + ``label_map.json``)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from empo.errors import DataError
from empo.paths import data_path

SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Situations:
    """One split: parallel lists of situation texts, their paraphrases and integer labels."""

    split: str
    texts: list[str]
    aug_texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def situations_dir(source: Path | str | None = None) -> Path:
    """``source`` or ``<data root>/ed_situations``; an error that says how to fix it if it is missing."""
    root = Path(source).expanduser() if source is not None else data_path("ed_situations")
    if not (root / "label_map.json").is_file():
        raise DataError(
            f"{root}: no label_map.json; point --data at the ed_situations folder "
            "(text,aug_text,label CSVs per split) or set EMPO_DATA_DIR"
        )
    return root


def load_label_names(source: Path | str | None = None) -> list[str]:
    """The 32 emotion names in label-id order (``label_map.json`` maps ``"0".."31"`` to names)."""
    path = situations_dir(source) / "label_map.json"
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
        return [str(mapping[str(i)]).strip().lower() for i in range(len(mapping))]
    except (ValueError, KeyError) as exc:
        raise DataError(f"{path}: expected {{'0': name, ..., 'N-1': name}} ({exc})") from None


def load_situations(split: str, source: Path | str | None = None) -> Situations:
    """Read one split; whitespace is normalised, an empty ``aug_text`` falls back to ``text``."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    path = situations_dir(source) / f"{split}.csv"
    if not path.is_file():
        raise DataError(f"{path} not found")
    n_labels = len(load_label_names(source))
    texts: list[str] = []
    augs: list[str] = []
    labels: list[int] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"text", "label"} - set(reader.fieldnames or [])
        if missing:
            raise DataError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        for lineno, row in enumerate(reader, start=2):
            text = " ".join((row.get("text") or "").split())
            if not text:
                continue
            try:
                label = int(row["label"])
            except (TypeError, ValueError):
                raise DataError(f"{path}:{lineno}: label {row['label']!r} is not an integer") from None
            if not 0 <= label < n_labels:
                raise DataError(f"{path}:{lineno}: label {label} outside 0..{n_labels - 1}")
            texts.append(text)
            augs.append(" ".join((row.get("aug_text") or "").split()) or text)
            labels.append(label)
    if not texts:
        raise DataError(f"{path}: no rows")
    return Situations(split=split, texts=texts, aug_texts=augs, labels=labels)
