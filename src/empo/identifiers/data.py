"""EPITOME data: read and check a CSV of (seeker post, response post, levels, rationales).

The format is the one of ``empo_splits/{train,val,test}.csv``: columns ``seeker_post``, ``response_post`` and, per
mechanism M in ER/IP/EX, ``M_level`` (0, 1 or 2) and optionally ``M_rationales`` (the response's evidence spans,
separated by ``|``). Other columns are ignored. Errors name the file, the row and the column.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from empo.errors import DataError

MECHANISMS: tuple[str, ...] = ("ER", "IP", "EX")
LEVELS: tuple[int, ...] = (0, 1, 2)
TEXT_COLUMNS = ("seeker_post", "response_post")


@dataclass
class EpitomeData:
    """Parallel lists: ``seekers[i]``, ``responses[i]``, ``levels[M][i]``, ``rationales[M][i]`` (list of spans)."""

    path: Path
    seekers: list[str]
    responses: list[str]
    levels: dict[str, np.ndarray]
    rationales: dict[str, list[list[str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.responses)

    def subset(self, idx: list[int] | np.ndarray) -> EpitomeData:
        idx = [int(i) for i in idx]
        return EpitomeData(
            path=self.path,
            seekers=[self.seekers[i] for i in idx],
            responses=[self.responses[i] for i in idx],
            levels={m: v[idx] for m, v in self.levels.items()},
            rationales={m: [r[i] for i in idx] for m, r in self.rationales.items()},
        )


def split_rationales(text: str | None) -> list[str]:
    """``"a|b|"`` -> ``["a", "b"]`` (EPITOME separates evidence spans with ``|``)."""
    if not text:
        return []
    return [s.strip() for s in text.split("|") if s.strip()]


def read_epitome_csv(path: Path | str, mechanisms: tuple[str, ...] = MECHANISMS) -> EpitomeData:
    """Read and validate an EPITOME-format CSV; raise :class:`DataError` naming the file, row and column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"EPITOME file {path} not found; point to a CSV with columns seeker_post, response_post, "
            f"ER_level, IP_level, EX_level (e.g. $EMPO_DATA_DIR/epitome/empo_splits/train.csv)"
        )
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = list(reader.fieldnames or [])
            needed = [*TEXT_COLUMNS, *(f"{m}_level" for m in mechanisms)]
            missing = [c for c in needed if c not in columns]
            if missing:
                raise DataError(
                    f"{path}: missing column(s) {', '.join(missing)}; an EPITOME CSV needs "
                    f"{', '.join(needed)} (found: {', '.join(columns) or 'no header'})"
                )
            seekers: list[str] = []
            responses: list[str] = []
            levels: dict[str, list[int]] = {m: [] for m in mechanisms}
            rats: dict[str, list[list[str]]] = {m: [] for m in mechanisms if f"{m}_rationales" in columns}
            for row_no, row in enumerate(reader, start=1):
                where = f"{path}: row {row_no} (line {reader.line_num})"
                if None in row:
                    raise DataError(f"{where}: more fields than the header has columns")
                for col in TEXT_COLUMNS:
                    if row.get(col) is None:
                        raise DataError(f"{where}: column {col} is missing (row too short)")
                if not row["response_post"].strip():
                    raise DataError(f"{where}: column response_post is empty")
                seekers.append(row["seeker_post"])
                responses.append(row["response_post"])
                for m in mechanisms:
                    raw = (row.get(f"{m}_level") or "").strip()
                    try:
                        value = int(float(raw))
                    except ValueError:
                        raise DataError(f"{where}: column {m}_level is {raw!r}, expected 0, 1 or 2") from None
                    if value not in LEVELS or float(raw) != value:
                        raise DataError(f"{where}: column {m}_level is {raw!r}, expected 0, 1 or 2")
                    levels[m].append(value)
                    if m in rats:
                        rats[m].append(split_rationales(row.get(f"{m}_rationales")))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a valid CSV ({exc})") from None
    if not responses:
        raise DataError(f"{path}: no rows (an EPITOME CSV needs a header and at least one row)")
    return EpitomeData(
        path=path,
        seekers=seekers,
        responses=responses,
        levels={m: np.asarray(v, dtype=np.int64) for m, v in levels.items()},
        rationales=rats,
    )


def default_split(name: str) -> Path:
    """``empo_splits/<name>.csv`` under the data root (``train``, ``val`` or ``test``)."""
    from empo.paths import data_path

    return data_path("epitome", "empo_splits", f"{name}.csv")


def rationale_char_mask(response: str, spans: list[str]) -> np.ndarray:
    """A boolean mask over the characters of ``response`` that lie in any rationale span (spans not found: ignored)."""
    mask = np.zeros(len(response), dtype=bool)
    for span in spans:
        start = response.find(span)
        while start >= 0:
            mask[start : start + len(span)] = True
            start = response.find(span, start + len(span))
    return mask
