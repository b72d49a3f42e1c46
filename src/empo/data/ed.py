"""EmpatheticDialogues (Rashkin et al. 2019), read from its ORIGINAL raw release, unchanged.

The release is a folder (or the official ``empatheticdialogues.tar.gz``) with ``train.csv``, ``valid.csv`` and
``test.csv``: one utterance per line, ``conv_id,utterance_idx,context,prompt,speaker_idx,utterance,selfeval,tags``,
commas inside text escaped as ``_comma_``. It is NOT standard CSV: quotes are literal characters (``"`` appears in
utterances unbalanced), so a CSV reader that honours quoting mangles it. Lines are split on ``,`` exactly as the
authors' own loader does.

Quirks of the real release, and what happens to them (every one is counted in :class:`SplitReport`, logged, and
written to build-prefs' ``stats.json``; nothing is dropped silently):

- rows with more than 8 fields (an unescaped comma in the situation or the utterance, or a trailing extra field):
  repaired when the speaker index can be located (the first integer field from position 5 on; the
  self-evaluation field ``5|5|5_5|5|5``, when present, marks where the utterance ends), otherwise skipped;
- stray whitespace around fields (very common at the end of situations and utterances): stripped;
- blank lines, duplicate ``(conv_id, utterance_idx)`` rows and empty utterances: skipped;
- a gap in ``utterance_idx`` (a row lost upstream): the dialogue keeps the turns before the gap, so that turns
  still alternate user / assistant.

Genuinely broken input (missing file, missing column, unknown emotion label, empty file, a row with fewer than 8
fields or a non-integer index) raises :class:`~empo.errors.DataError` naming the file and the line.

Two views of the same data: :func:`read_ed` gives polars frames (one row per turn; the fast path build-prefs uses)
and :func:`load_ed` gives typed :class:`Dialogue` records.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import DataError
from empo.log import get_logger
from empo.paths import RESOURCES_DIR, data_path

if TYPE_CHECKING:
    import polars as pl

log = get_logger(__name__)

#: The 32 emotion labels of EmpatheticDialogues (the ``context`` column), alphabetical.
EMOTIONS: tuple[str, ...] = (
    "afraid",
    "angry",
    "annoyed",
    "anticipating",
    "anxious",
    "apprehensive",
    "ashamed",
    "caring",
    "confident",
    "content",
    "devastated",
    "disappointed",
    "disgusted",
    "embarrassed",
    "excited",
    "faithful",
    "furious",
    "grateful",
    "guilty",
    "hopeful",
    "impressed",
    "jealous",
    "joyful",
    "lonely",
    "nostalgic",
    "prepared",
    "proud",
    "sad",
    "sentimental",
    "surprised",
    "terrified",
    "trusting",
)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
COLUMNS: tuple[str, ...] = (
    "conv_id",
    "utterance_idx",
    "context",
    "prompt",
    "speaker_idx",
    "utterance",
    "selfeval",
    "tags",
)
#: The small sample written for this project (original text, ED's raw format): the default when the shared data
#: is absent, and what the tests use.
SAMPLE_DIR: Path = RESOURCES_DIR / "ed_sample"

_SELFEVAL = re.compile(r"^\d+\|\d+\|\d+_\d+\|\d+\|\d+$")


@dataclass(frozen=True)
class Turn:
    """One utterance: ``role`` is ``"user"`` (ED's speaker) or ``"assistant"`` (ED's listener)."""

    role: str
    text: str


@dataclass(frozen=True)
class Dialogue:
    """One ED conversation: its emotion label, the speaker's situation, and turns alternating user/assistant."""

    conv_id: str
    split: str
    emotion: str
    situation: str
    turns: tuple[Turn, ...]


@dataclass
class SplitReport:
    """What reading one split found: rows read, quirks repaired, and everything skipped (by reason)."""

    file: str
    rows: int = 0
    repaired_rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    dialogues: int = 0
    turns: int = 0
    truncated_dialogues: int = 0
    dropped_dialogues: int = 0

    def skip(self, reason: str, n: int = 1) -> None:
        if n:
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    @property
    def skipped_rows(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "rows": self.rows,
            "repaired_rows": self.repaired_rows,
            "skipped_rows": self.skipped_rows,
            "skipped_by_reason": dict(sorted(self.skipped.items())),
            "dialogues": self.dialogues,
            "turns": self.turns,
            "truncated_dialogues": self.truncated_dialogues,
            "dropped_dialogues": self.dropped_dialogues,
        }


@dataclass
class EDFrames:
    """ED as polars frames, one per split: one row per turn, in file order.

    Columns: ``conv_id``, ``emotion``, ``situation``, ``turn`` (0-based; even = user, odd = assistant), ``role``,
    ``text``, ``line`` (the source line, for tracing a pair back to the file).
    """

    source: str
    frames: dict[str, pl.DataFrame]
    reports: dict[str, SplitReport]


# ------------------------------------------------------------------------------------------------------ sources


def resolve_ed_source(source: Path | str | None = None) -> Path:
    """``None`` -> ``$EMPO_DATA_DIR/empatheticdialogues`` (or the embedded sample when that is absent);
    ``"sample"`` -> the embedded sample; anything else -> that path."""
    if source is None:
        default = data_path("empatheticdialogues")
        if default.exists():
            return default
        log.warning("%s not found; using the embedded EmpatheticDialogues sample (%s)", default, SAMPLE_DIR)
        return SAMPLE_DIR
    if str(source) == "sample":
        return SAMPLE_DIR
    return Path(source).expanduser()


def _read_split_bytes(source: Path, splits: Sequence[str]) -> dict[str, tuple[str, bytes]]:
    """``{split: (name for messages, raw bytes)}`` from a folder or a tar archive."""
    hint = (
        "pass an EmpatheticDialogues folder (train.csv, valid.csv, test.csv) or the official "
        "empatheticdialogues.tar.gz"
    )
    if not source.exists():
        raise DataError(f"{source}: no such folder or file; {hint}")
    out: dict[str, tuple[str, bytes]] = {}
    if source.is_dir():
        for split in splits:
            path = source / f"{split}.csv"
            if not path.is_file():
                raise DataError(f"{path}: file not found; {hint}")
            out[split] = (str(path), path.read_bytes())
        return out
    if not tarfile.is_tarfile(source):
        raise DataError(f"{source}: neither a folder nor a tar archive; {hint}")
    try:
        with tarfile.open(source, "r:*") as tar:
            members = {}
            for m in tar.getmembers():
                base = m.name.rsplit("/", 1)[-1]
                # Skip macOS resource forks (._train.csv) that some re-packed archives carry.
                if m.isfile() and base.endswith(".csv") and not base.startswith("._"):
                    # The shallowest match wins (the release has empatheticdialogues/train.csv).
                    prev = members.get(base)
                    if prev is None or prev.name.count("/") > m.name.count("/"):
                        members[base] = m
            for split in splits:
                member = members.get(f"{split}.csv")
                if member is None:
                    raise DataError(f"{source}: no {split}.csv inside the archive; {hint}")
                f = tar.extractfile(member)
                assert f is not None
                out[split] = (f"{source}[{member.name}]", f.read())
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{source}: cannot read the archive ({exc}); {hint}") from None
    return out


# ------------------------------------------------------------------------------------------------------ parsing


def _repair_row(fields: list[str]) -> list[str] | None:
    """The 8 standard fields of a row that has more, or ``None`` when it cannot be repaired.

    The speaker index is the first integer field from position 4 on (an unescaped comma in the situation shifts
    it right); the utterance runs from after it up to the self-evaluation field (``5|5|5_5|5|5``); fields after
    that are extra (the release has a few trailing ones).
    """
    n = len(fields)
    sp = next((i for i in range(4, n - 1) if fields[i].strip().isdigit()), None)
    if sp is None:
        return None
    ev = next((j for j in range(sp + 2, n) if _SELFEVAL.match(fields[j].strip())), None)
    utterance = ",".join(fields[sp + 1 : ev]) if ev is not None else fields[sp + 1]
    selfeval = fields[ev] if ev is not None else ""
    return [*fields[:3], ",".join(fields[3:sp]), fields[sp], utterance, selfeval, ""]


def _unescape(expr: pl.Expr) -> pl.Expr:
    return expr.str.replace_all("_comma_", ",", literal=True).str.strip_chars()


def _parse_split(name: str, data: bytes) -> tuple[pl.DataFrame, SplitReport]:
    import polars as pl

    report = SplitReport(file=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}, line {line}: not valid UTF-8 ({exc.reason})") from None
    if not text or text.isspace():  # (not .strip(): that copies the whole file)
        raise DataError(
            f"{name}: empty file; expected the header {','.join(COLUMNS)} and one row per utterance"
        )
    lines = text.split("\n")
    header = [h.strip() for h in lines[0].rstrip("\r").split(",")]
    for i, col in enumerate(COLUMNS):
        if i >= len(header) or header[i] != col:
            found = header[i] if i < len(header) else "nothing"
            raise DataError(
                f"{name}, line 1: missing column {col!r} (found {found!r} at position {i + 1}); "
                f"the header must be {','.join(COLUMNS)}"
            )
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    raw = pl.DataFrame({"raw": lines[1:]}, schema={"raw": pl.String}).with_row_index("line", offset=2)
    if raw.height == 0:
        raise DataError(f"{name}: empty file (a header but no rows); expected one row per utterance")
    raw = raw.with_columns(pl.col("raw").str.strip_suffix("\r"))
    blank = raw["raw"].str.strip_chars() == ""
    report.skip("blank line", int(blank.sum()))
    raw = raw.filter(~blank).with_columns(parts=pl.col("raw").str.split(","))
    raw = raw.with_columns(nf=pl.col("parts").list.len())
    report.rows = raw.height

    short = raw.filter(pl.col("nf") < len(COLUMNS))
    if short.height:
        line, nf = short["line"][0], short["nf"][0]
        raise DataError(
            f"{name}, line {line}: malformed row with {nf} comma-separated field(s), expected {len(COLUMNS)} "
            f"({','.join(COLUMNS)}); commas inside text must be written as _comma_"
        )
    regular = raw.filter(pl.col("nf") == len(COLUMNS))
    extra = raw.filter(pl.col("nf") > len(COLUMNS))
    wanted = ("conv_id", "utterance_idx", "context", "prompt", "speaker_idx", "utterance")
    rows = regular.select("line", *[pl.col("parts").list.get(COLUMNS.index(c)).alias(c) for c in wanted])
    if extra.height:
        fixed: dict[str, list[Any]] = {c: [] for c in ("line", *wanted)}
        for line, parts in zip(extra["line"].to_list(), extra["parts"].to_list(), strict=True):
            repaired = _repair_row(parts)
            if repaired is None:
                report.skip("extra fields, not repairable")
                log.debug("%s, line %d: skipped a row with %d fields", name, line, len(parts))
                continue
            report.repaired_rows += 1
            fixed["line"].append(line)
            for c in wanted:
                fixed[c].append(repaired[COLUMNS.index(c)])
        schema = {"line": pl.UInt32, **dict.fromkeys(wanted, pl.String)}
        rows = pl.concat([rows, pl.DataFrame(fixed, schema=schema)]).sort("line")

    rows = rows.with_columns(
        pl.col("conv_id").str.strip_chars(),
        pl.col("context").str.strip_chars().alias("emotion"),
        _unescape(pl.col("prompt")).alias("situation"),
        _unescape(pl.col("utterance")).alias("text"),
        pl.col("utterance_idx").str.strip_chars().cast(pl.Int64, strict=False).alias("idx"),
    )
    bad_idx = rows.filter(pl.col("idx").is_null())
    if bad_idx.height:
        raise DataError(
            f"{name}, line {bad_idx['line'][0]}: utterance_idx {bad_idx['utterance_idx'][0]!r} is not an "
            f"integer (a malformed row?)"
        )
    bad_emo = rows.filter(~pl.col("emotion").is_in(EMOTIONS))
    if bad_emo.height:
        raise DataError(
            f"{name}, line {bad_emo['line'][0]}: unknown emotion label {bad_emo['emotion'][0]!r} in column "
            f"context; expected one of the 32 EmpatheticDialogues labels ({', '.join(EMOTIONS)})"
        )
    empty_id = rows["conv_id"] == ""
    report.skip("empty conv_id", int(empty_id.sum()))
    rows = rows.filter(~empty_id)
    n = rows.height
    rows = rows.unique(subset=["conv_id", "idx"], keep="first", maintain_order=True)
    report.skip("duplicate (conv_id, utterance_idx)", n - rows.height)
    empty = rows["text"] == ""
    report.skip("empty utterance", int(empty.sum()))
    rows = rows.filter(~empty)

    # Keep each dialogue's contiguous run of turns from utterance_idx 1, so roles alternate by position.
    rows = rows.sort(["conv_id", "idx"]).with_columns(
        rank=pl.int_range(1, pl.len() + 1).over("conv_id"),
        first_line=pl.col("line").min().over("conv_id"),
    )
    rows = rows.with_columns(keep=pl.col("idx") == pl.col("rank"))
    per_conv = rows.group_by("conv_id").agg(kept=pl.col("keep").sum(), total=pl.len())
    report.truncated_dialogues = per_conv.filter(
        (pl.col("kept") > 0) & (pl.col("kept") < pl.col("total"))
    ).height
    report.dropped_dialogues = per_conv.filter(pl.col("kept") == 0).height
    report.skip("after a gap in utterance_idx", int((~rows["keep"]).sum()))
    rows = rows.filter(pl.col("keep"))

    # A dialogue's emotion and situation are those of its first row (they are repeated on every row).
    frame = (
        rows.sort(["first_line", "idx"])
        .select(
            pl.col("conv_id"),
            pl.col("emotion").first().over("conv_id"),
            pl.col("situation").first().over("conv_id"),
            (pl.col("idx") - 1).cast(pl.Int32).alias("turn"),
            pl.when(pl.col("idx") % 2 == 1).then(pl.lit("user")).otherwise(pl.lit("assistant")).alias("role"),
            pl.col("text"),
            pl.col("line").cast(pl.Int64),
        )
        .rechunk()
    )
    report.turns = frame.height
    report.dialogues = frame["conv_id"].n_unique()
    return frame, report


def read_ed(source: Path | str | None = None, splits: Sequence[str] = SPLITS) -> EDFrames:
    """Read ED splits into polars frames (the fast path). See :class:`EDFrames` for the columns."""
    for split in splits:
        if split not in SPLITS:
            raise DataError(f"unknown ED split {split!r}; choose from {', '.join(SPLITS)}")
    path = resolve_ed_source(source)
    frames: dict[str, pl.DataFrame] = {}
    reports: dict[str, SplitReport] = {}
    for split, (name, data) in _read_split_bytes(path, splits).items():
        frames[split], reports[split] = _parse_split(name, data)
        rep = reports[split]
        log.info(
            "ED %s: %d dialogues, %d turns from %d rows (%s)",
            split,
            rep.dialogues,
            rep.turns,
            rep.rows,
            name,
        )
        if rep.repaired_rows:
            log.info("ED %s: repaired %d row(s) with extra fields", split, rep.repaired_rows)
        if rep.skipped_rows or rep.truncated_dialogues or rep.dropped_dialogues:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(rep.skipped.items()))
            log.warning(
                "ED %s: skipped %d row(s) (%s); %d dialogue(s) truncated at a gap, %d dropped",
                split,
                rep.skipped_rows,
                reasons or "none",
                rep.truncated_dialogues,
                rep.dropped_dialogues,
            )
    return EDFrames(source=str(path), frames=frames, reports=reports)


def frame_to_dialogues(frame: pl.DataFrame, split: str) -> list[Dialogue]:
    """Typed :class:`Dialogue` records from a :func:`read_ed` frame (rows of one dialogue are contiguous)."""
    out: list[Dialogue] = []
    cols = [frame[c].to_list() for c in ("conv_id", "emotion", "situation", "role", "text")]
    turns: list[Turn] = []
    for i, (cid, emo, sit, role, text) in enumerate(zip(*cols, strict=True)):
        turns.append(Turn(role, text))
        if i + 1 == frame.height or cols[0][i + 1] != cid:
            out.append(Dialogue(cid, split, emo, sit, tuple(turns)))
            turns = []
    return out


def load_ed(source: Path | str | None = None, splits: Sequence[str] = SPLITS) -> dict[str, list[Dialogue]]:
    """Load ED as typed dialogues, ``{split: [Dialogue, ...]}`` in file order.

    ``source``: an ED folder (``train.csv``, ``valid.csv``, ``test.csv``) or the official
    ``empatheticdialogues.tar.gz``; ``None`` is ``$EMPO_DATA_DIR/empatheticdialogues`` (the embedded sample
    when that is absent), ``"sample"`` the embedded sample. Raises :class:`~empo.errors.DataError` on bad input.
    """
    ed = read_ed(source, splits)
    return {split: frame_to_dialogues(frame, split) for split, frame in ed.frames.items()}
