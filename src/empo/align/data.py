"""Preference data for ``empo align``: read the prefs folder, check it, fit it to ``max_length``, reshape it.

The prefs folder is what ``empo build-prefs`` writes: ``train.parquet``, ``valid.parquet``, ``test.parquet`` and
``stats.json``. Align trains on ``train.parquet`` and evaluates on ``valid.parquet``; it never opens
``test.parquet`` (the held-out split belongs to ``empo generate``/``empo eval``).

Rows come in two formats:

- paired (DPO/IPO/ORPO/SimPO): ``prompt`` (a list of ``{"role", "content"}`` messages: an optional system message,
  then the dialogue), ``chosen`` and ``rejected`` (one-message lists ``[{"role": "assistant", "content": ...}]``),
  plus metadata columns (``conv_id``, ``emotion``, ...) that are carried along;
- unpaired (KTO): ``prompt``, ``completion`` (a one-message list) and ``label`` (bool).

Everything here is plain Python over lists of dicts, checked row by row with errors that name the file, the row
and the field.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from empo.errors import DataError, EmpoError

# plain logging (a child of the "empo" logger): bench/align.py imports this module on machines without rich
log = logging.getLogger(__name__)

Format = Literal["paired", "unpaired", "prompt"]
PAIRED = ("prompt", "chosen", "rejected")
UNPAIRED = ("prompt", "completion", "label")
ROLES = ("system", "user", "assistant")
TRAIN_FILE, VALID_FILE = "train.parquet", "valid.parquet"


@dataclass
class PrefsData:
    """The rows of one prefs folder (train and, if present, valid), their format and the files' hashes."""

    train: list[dict[str, Any]]
    valid: list[dict[str, Any]] | None
    format: Format
    hashes: dict[str, str]
    folder: Path


@dataclass
class FitReport:
    """What :func:`fit_to_length` did to one split."""

    rows_in: int = 0
    rows_out: int = 0
    truncated_context: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "truncated_context": self.truncated_context,
            "dropped": dict(self.dropped),
        }


# ------------------------------------------------------------------------------------------------ reading, checks


def _check_messages(value: Any, where: str, *, single_assistant: bool) -> None:
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{where}: expected a non-empty list of {{'role', 'content'}} messages, got {value!r:.80}"
        )
    for i, msg in enumerate(value):
        if not isinstance(msg, dict) or set(msg) < {"role", "content"}:
            raise DataError(f"{where}[{i}]: expected a {{'role', 'content'}} message, got {msg!r:.80}")
        if msg["role"] not in ROLES:
            raise DataError(f"{where}[{i}]: unknown role {msg['role']!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(msg["content"], str) or not msg["content"].strip():
            raise DataError(f"{where}[{i}]: empty or non-text content")
    if single_assistant and (len(value) != 1 or value[0]["role"] != "assistant"):
        raise DataError(
            f"{where}: expected exactly one assistant message [{{'role': 'assistant', 'content': ...}}], "
            f"got {len(value)} message(s) with roles {[m['role'] for m in value]}"
        )


def check_rows(rows: Sequence[dict[str, Any]], fmt: Format, source: str) -> None:
    """Check every row of a split; raise :class:`DataError` naming ``source``, the row and the field."""
    if not rows:
        raise DataError(f"{source}: no rows; build the preference pairs again (empo build-prefs)")
    for i, row in enumerate(rows):
        where = f"{source}: row {i}"
        prompt = row.get("prompt")
        _check_messages(prompt, f"{where}: prompt", single_assistant=False)
        if prompt[-1]["role"] != "user":
            raise DataError(f"{where}: prompt must end with a user message, ends with {prompt[-1]['role']!r}")
        if fmt == "paired":
            _check_messages(row.get("chosen"), f"{where}: chosen", single_assistant=True)
            _check_messages(row.get("rejected"), f"{where}: rejected", single_assistant=True)
        elif fmt == "unpaired":
            _check_messages(row.get("completion"), f"{where}: completion", single_assistant=True)
            if not isinstance(row.get("label"), bool):
                raise DataError(f"{where}: label must be true/false, got {row.get('label')!r}")


def detect_format(columns: Sequence[str], source: str) -> Format:
    """``paired`` if the prompt/chosen/rejected columns are there, ``unpaired`` for prompt/completion/label."""
    cols = set(columns)
    if set(PAIRED) <= cols:
        return "paired"
    if set(UNPAIRED) <= cols:
        return "unpaired"
    raise DataError(
        f"{source}: missing columns; a preference file needs {', '.join(PAIRED)} (paired, for DPO/IPO/ORPO/SimPO) "
        f"or {', '.join(UNPAIRED)} (unpaired, for KTO); found: {', '.join(sorted(cols)) or 'none'}"
    )


def read_rows(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All rows of a parquet file as dicts, and its column names."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for unreadable files
        raise DataError(f"{path}: not a readable parquet file ({exc})") from None
    return table.to_pylist(), list(table.column_names)


def read_prefs(prefs_dir: Path | str, *, with_valid: bool = True) -> PrefsData:
    """Read and check ``train.parquet`` (and ``valid.parquet``) of a prefs folder. ``test.parquet`` is never read."""
    from empo.io import sha256_file

    folder = Path(prefs_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"prefs folder {folder} not found; build it with `empo build-prefs --out {folder}`")
    train_path = folder / TRAIN_FILE
    if not train_path.is_file():
        raise DataError(f"{train_path} not found; a prefs folder holds train.parquet and valid.parquet")
    train, cols = read_rows(train_path)
    fmt = detect_format(cols, str(train_path))
    check_rows(train, fmt, str(train_path))
    hashes = {TRAIN_FILE: sha256_file(train_path)}
    valid = None
    valid_path = folder / VALID_FILE
    if with_valid:
        if valid_path.is_file():
            valid, vcols = read_rows(valid_path)
            vfmt = detect_format(vcols, str(valid_path))
            if vfmt != fmt:
                raise DataError(f"{valid_path} is {vfmt} but {train_path} is {fmt}; rebuild the prefs folder")
            check_rows(valid, fmt, str(valid_path))
            hashes[VALID_FILE] = sha256_file(valid_path)
        else:
            log.warning("%s not found: no evaluation during alignment", valid_path)
    stats = folder / "stats.json"
    if stats.is_file():
        hashes["stats.json"] = sha256_file(stats)
    return PrefsData(train=train, valid=valid, format=fmt, hashes=hashes, folder=folder)


# ------------------------------------------------------------------------------------------------------ reshaping


def unpair(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired rows -> unpaired (KTO) rows: each pair gives (prompt, chosen, True) then (prompt, rejected, False).

    Extra columns are kept on both rows; ``rejected_emotion`` describes the rejected row only, so it is renamed
    ``completion_emotion`` (the chosen row gets the dialogue's own ``emotion``).
    """
    out: list[dict[str, Any]] = []
    for row in rows:
        extra = {k: v for k, v in row.items() if k not in PAIRED and k != "rejected_emotion"}
        good = {**extra, "prompt": row["prompt"], "completion": row["chosen"], "label": True}
        bad = {**extra, "prompt": row["prompt"], "completion": row["rejected"], "label": False}
        if "rejected_emotion" in row:
            good["completion_emotion"] = row.get("emotion")
            bad["completion_emotion"] = row["rejected_emotion"]
        out += [good, bad]
    return out


def to_prompt_only(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Paired or unpaired rows -> prompt-only rows (on-policy algorithms), one per distinct prompt; other columns
    are kept for rewards, and the real reply (``chosen``, or a ``label=True`` completion) becomes ``reference``."""
    index: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for row in rows:
        key = repr(row["prompt"])
        good = row.get("chosen") if "chosen" in row else (row.get("completion") if row.get("label") else None)
        if key not in index:
            index[key] = len(out)
            out.append(
                {k: v for k, v in row.items() if k not in ("chosen", "rejected", "completion", "label")}
            )
        if good and "reference" not in out[index[key]]:
            out[index[key]]["reference"] = good[-1]["content"]
    with_ref = [r for r in out if "reference" in r]
    if with_ref and len(with_ref) < len(out):
        log.info(
            "%d prompt(s) without a real reply (only label=False rows) left out", len(out) - len(with_ref)
        )
        out = with_ref
    return out


def convert(rows: list[dict[str, Any]], have: Format, want: Format, source: str) -> list[dict[str, Any]]:
    """Reshape rows from the file's format to the algorithm's."""
    if have == want:
        return rows
    if have == "paired" and want == "unpaired":
        return unpair(rows)
    if want == "prompt":
        return to_prompt_only(rows)
    raise DataError(
        f"{source} holds unpaired rows (prompt/completion/label) but this algorithm needs pairs "
        "(prompt/chosen/rejected); build paired prefs (empo build-prefs --format dpo) or use --algo kto"
    )


# -------------------------------------------------------------------------------------------- tokenizer checks


def check_tokenizer(tokenizer: Any, model_name: str) -> None:
    """Chat template, EOS and pad tokens: fail early with a clear message instead of deep inside TRL."""
    if not getattr(tokenizer, "chat_template", None):
        raise EmpoError(
            f"the tokenizer of {model_name} has no chat template; preference rows are conversations. Use an "
            "instruct/chat model, or set tokenizer.chat_template and save the tokenizer into the model folder"
        )
    if tokenizer.eos_token is None:
        raise EmpoError(f"the tokenizer of {model_name} has no EOS token; set tokenizer.eos_token")
    if tokenizer.pad_token is None:
        log.info("%s has no pad token: using EOS (%r) for padding", model_name, tokenizer.eos_token)
        tokenizer.pad_token = tokenizer.eos_token
    probe = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    try:
        ids = _ids(tokenizer, probe)
    except Exception as exc:
        raise EmpoError(
            f"the chat template of {model_name} fails on a plain user/assistant exchange: {exc}"
        ) from None
    if tokenizer.eos_token_id not in ids:
        log.warning(
            "the chat template of %s does not end assistant turns with EOS (%r): the model may not learn to stop",
            model_name,
            tokenizer.eos_token,
        )


def _ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def completion_lengths(
    tokenizer: Any, prompt: list[dict], completions: list[list[dict]]
) -> tuple[int, list[int]]:
    """Tokens of the prompt (with the generation prompt) and of each completion after it, as TRL counts them."""
    p = _ids(tokenizer, prompt, add_generation_prompt=True)
    out = []
    for comp in completions:
        full = _ids(tokenizer, prompt + comp)
        n = 0
        while n < min(len(p), len(full)) and p[n] == full[n]:
            n += 1
        out.append(len(full) - n)
    return len(p), out


def _drop_oldest_turn(prompt: list[dict]) -> list[dict] | None:
    """Drop the oldest dialogue turn(s) so the dialogue still starts with a user turn; None if nothing can go."""
    head = [m for m in prompt[:1] if m["role"] == "system"]
    turns = prompt[len(head) :]
    users = [i for i, m in enumerate(turns) if m["role"] == "user" and i > 0]
    if not users:
        return None
    return head + turns[users[0] :]


def fit_to_length(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    completion_keys: Sequence[str],
    max_length: int,
    max_completion_length: int | None = None,
    truncate_context: bool = True,
) -> tuple[list[dict[str, Any]], FitReport]:
    """Make every row fit ``max_length`` tokens (prompt + each of its ``completion_keys``), from the left.

    Completions longer than ``max_completion_length`` are dropped. A prompt that is too long loses its oldest
    dialogue turns (the system message and the last user turn stay) when ``truncate_context``; rows that still do
    not fit are dropped. Each kept row gets a ``length`` column (prompt + completions, tokens) for length grouping.
    """
    report = FitReport(rows_in=len(rows))
    max_comp = max_completion_length or max_length // 2
    comp_keys = tuple(completion_keys)
    out = []
    for row in rows:
        prompt = list(row["prompt"])
        p_len, c_lens = completion_lengths(tokenizer, prompt, [row[k] for k in comp_keys])
        if c_lens and max(c_lens) > max_comp:
            report.drop("completion_too_long")
            continue
        longest = max(c_lens, default=0)
        truncated = False
        while p_len + longest > max_length and truncate_context:
            shorter = _drop_oldest_turn(prompt)
            if shorter is None:
                break
            prompt, truncated = shorter, True
            p_len = len(_ids(tokenizer, prompt, add_generation_prompt=True))
        if p_len + longest > max_length:
            report.drop("too_long")
            continue
        report.truncated_context += truncated
        out.append({**row, "prompt": prompt, "length": p_len + sum(c_lens)})
    report.rows_out = len(out)
    return out, report


def log_fit(split: str, report: FitReport, max_length: int) -> None:
    dropped = sum(report.dropped.values())
    log.info(
        "%s: %d rows, %d kept, %d with context truncated from the left, %d dropped as longer than max_length=%d%s",
        split,
        report.rows_in,
        report.rows_out,
        report.truncated_context,
        dropped,
        max_length,
        f" ({', '.join(f'{k}: {v}' for k, v in report.dropped.items())})" if dropped else "",
    )
    if report.rows_out == 0:
        raise DataError(
            f"{split}: every row is longer than max_length={max_length} tokens; raise train.max_length "
            "(e.g. --set train.max_length=1024)"
        )
