"""Batched generation for evaluation: answer each dialogue at its last listener turn.

The core works on plain message lists (``[{"role", "content"}, ...]``), so any prompt source works:
:func:`records_from_ed` builds them from EmpatheticDialogues (with the same ``dialogue_messages`` that build-prefs
trains with, so training and evaluation prompts match) and :func:`records_from_jsonl` reads them from a file.

Speed: prompts are rendered with the model's chat template, sorted by token length (longest first, so a batch holds
similar lengths and an out-of-memory error shows at once), left-padded, and generated in batches; outputs are put
back in input order. Greedy by default, as EmPO evaluated.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from empo.errors import DataError, EmpoError
from empo.log import get_logger

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from empo.generate.config import GenerateConfig
    from empo.recipe import Recipe

log = get_logger(__name__)

Messages = list[dict[str, str]]


# ------------------------------------------------------------------------------------------------ prompt sources


def records_from_ed(
    source: str | Path | None,
    split: str = "test",
    *,
    limit: int | None = None,
    system_prompt: str | None = None,
    max_context_turns: int | None = None,
) -> list[dict[str, Any]]:
    """One record per ED dialogue of ``split``, cut at its LAST listener turn.

    Each record: ``conv_id``, ``emotion``, ``situation``, ``context`` (the prompt messages, system message first
    unless ``system_prompt == ""``) and ``reference`` (the real listener turn at the cut). ``system_prompt=None``
    uses :data:`empo.data.chat.DEFAULT_SYSTEM_PROMPT`. Dialogues without a listener turn after a user turn are
    skipped (and counted in the log).
    """
    from empo.data.chat import DEFAULT_SYSTEM_PROMPT, dialogue_messages, listener_indices
    from empo.data.ed import load_ed

    system = DEFAULT_SYSTEM_PROMPT if system_prompt is None else (system_prompt or None)
    dialogues = load_ed(source, splits=(split,))[split]
    records: list[dict[str, Any]] = []
    skipped = 0
    for d in dialogues:
        cuts = listener_indices(d)
        if not cuts:
            skipped += 1
            continue
        cut = cuts[-1]
        records.append(
            {
                "conv_id": d.conv_id,
                "emotion": d.emotion,
                "situation": d.situation,
                "context": dialogue_messages(
                    d, cut, system_prompt=system, max_context_turns=max_context_turns
                ),
                "reference": d.turns[cut].text,
            }
        )
        if limit is not None and len(records) >= limit:
            break
    if skipped:
        log.info("skipped %d %s dialogue(s) without a listener turn after a user turn", skipped, split)
    if not records:
        raise DataError(
            f"no dialogue to answer in the {split!r} split of {source or 'the default ED folder'}"
        )
    return records


def _check_messages(value: Any, where: str) -> Messages:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: 'context' must be a non-empty list of {{role, content}} messages")
    for m in value:
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise DataError(f"{where}: every message in 'context' needs string 'role' and 'content' fields")
    return value


def records_from_jsonl(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Prompt records from a JSONL file: each line has ``context`` (a list of messages); other fields
    (``conv_id``, ``emotion``, ``reference``, ...) are carried through to the output."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"prompts file {path} not found")
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            _check_messages(rec.get("context"), f"{path}:{lineno}")
            rec.setdefault("conv_id", str(lineno))
            records.append(rec)
            if limit is not None and len(records) >= limit:
                break
    if not records:
        raise DataError(f"{path}: no prompt records (the file is empty)")
    return records


# -------------------------------------------------------------------------------------------------- generation


@dataclass
class GenerationResult:
    """Texts in INPUT order, the number of new tokens of each, and the wall time of the generation loop."""

    texts: list[str]
    new_tokens: list[int]
    seconds: float
    prompt_tokens: list[int] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return sum(self.new_tokens) / self.seconds if self.seconds > 0 else float("nan")

    @property
    def responses_per_s(self) -> float:
        return len(self.texts) / self.seconds if self.seconds > 0 else float("nan")


def render_prompts(
    tok: PreTrainedTokenizerBase, conversations: Sequence[Messages], max_prompt_tokens: int | None = None
) -> list[list[int]]:
    """Token ids of each conversation through the chat template with the generation prompt.

    A prompt longer than ``max_prompt_tokens`` keeps its last tokens (the latest turns and the generation prompt).
    """
    if getattr(tok, "chat_template", None) is None:
        raise EmpoError(
            "the tokenizer has no chat template; empo generate answers conversations, so use a chat model "
            "(or set tokenizer.chat_template in its folder)"
        )
    out: list[list[int]] = []
    for msgs in conversations:
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if max_prompt_tokens is not None and len(ids) > max_prompt_tokens:
            ids = ids[-max_prompt_tokens:]
        out.append(list(ids))
    return out


def eos_ids(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> list[int]:
    """The tokenizer's EOS plus whatever the model's generation config already stops on."""
    ids: list[int] = []
    cfg_eos = getattr(model.generation_config, "eos_token_id", None)
    for value in (tok.eos_token_id, *(cfg_eos if isinstance(cfg_eos, list) else [cfg_eos])):
        if value is not None and value not in ids:
            ids.append(int(value))
    return ids


def make_generation_config(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    *,
    max_new_tokens: int = 64,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
):
    """A clean ``GenerationConfig`` with pad/eos set (also set on ``model.generation_config``, which transformers
    otherwise leaves unset for many chat models and then warns on every call)."""
    from transformers import GenerationConfig

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    eos = eos_ids(model, tok)
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos if len(eos) > 1 else eos[0]
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "pad_token_id": pad,
        "eos_token_id": model.generation_config.eos_token_id,
    }
    if do_sample:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    return GenerationConfig(**kwargs)


def _count_new(row: list[int], eos: set[int]) -> int:
    """Tokens generated up to and including the first EOS (the rest is padding)."""
    for i, t in enumerate(row):
        if t in eos:
            return i + 1
    return len(row)


def generate_texts(
    model: PreTrainedModel,
    tok: PreTrainedTokenizerBase,
    conversations: Sequence[Messages],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int = 0,
    max_prompt_tokens: int | None = None,
    sort_by_length: bool = True,
    on_batch: Callable[[int, int], None] | None = None,
) -> GenerationResult:
    """Answer ``conversations`` (message lists) in batches; return the responses in INPUT order.

    Prompts are sorted by token length (longest first) unless ``sort_by_length=False``, left-padded per batch,
    and generated with a clean generation config. ``on_batch(n_responses, n_new_tokens)`` is called after each
    batch (progress bars). Sampling is seeded per batch (``seed + batch index``); its draws depend on the batch
    composition, so change ``batch_size`` and sampled texts change too (greedy texts do not, up to float ties).
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    prompts = render_prompts(tok, conversations, max_prompt_tokens)
    gen_cfg = make_generation_config(
        model, tok, max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p
    )
    pad = gen_cfg.pad_token_id
    eos = set(eos_ids(model, tok))
    order = list(range(len(prompts)))
    if sort_by_length:
        order.sort(key=lambda i: -len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    counts: list[int] = [0] * len(prompts)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        for b, lo in enumerate(range(0, len(order), batch_size)):
            idx = order[lo : lo + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                p = prompts[i]
                ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                mask[r, width - len(p) :] = 1
            if do_sample:
                torch.manual_seed(seed + b)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device), generation_config=gen_cfg
                )
            new = out[:, width:].tolist()
            n_tokens = 0
            for r, i in enumerate(idx):
                n = _count_new(new[r], eos)
                counts[i] = n
                n_tokens += n
                texts[i] = tok.decode(new[r][:n], skip_special_tokens=True).strip()
            if on_batch is not None:
                on_batch(len(idx), n_tokens)
    finally:
        if was_training:
            model.train()
    return GenerationResult(
        texts=texts,
        new_tokens=counts,
        seconds=time.perf_counter() - start,
        prompt_tokens=[len(p) for p in prompts],
    )


# ------------------------------------------------------------------------------------------------- the command


def write_jsonl_atomic(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` as JSON lines through a temporary sibling file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def meta_path(out: Path) -> Path:
    """The sidecar file with a GEN file's settings: ``GEN.jsonl`` -> ``GEN.meta.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".meta.json") if out.suffix else out.with_name(out.name + ".meta.json")


@dataclass
class GenerateSummary:
    out: Path
    n: int
    seconds: float
    new_tokens: int
    meta: dict[str, Any]

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else float("nan")


def _progress_runner(total: int):
    """A progress bar with responses done and tokens/s; returns (context manager, callback)."""
    from empo.log import console, progress

    bar = progress()
    task = bar.add_task("generating", total=total, rate="")
    state = {"tokens": 0, "done": 0, "start": time.perf_counter()}

    def on_batch(n_done: int, n_tokens: int) -> None:
        state["tokens"] += n_tokens
        state["done"] += n_done
        rate = state["tokens"] / max(time.perf_counter() - state["start"], 1e-9)
        bar.update(task, advance=n_done, rate=f"{rate:,.0f} tok/s")
        if not console.is_terminal:  # no bar in logs/CI: one line per batch instead
            log.info("generated %d/%d (%.1f new tokens/s)", state["done"], total, rate)

    return bar, on_batch


def run_generate(
    recipe: Recipe,
    out: Path,
    *,
    prompts_file: Path | None = None,
    overwrite: bool = False,
    command: str | None = None,
) -> GenerateSummary:
    """``empo generate``: build the records (ED or a prompts file), apply the plug-in, generate, write GEN.jsonl
    (atomically) and its ``.meta.json`` sidecar. Returns a summary."""
    from empo.generate.plugins import get_plugin
    from empo.io import git_sha, versions
    from empo.models.resolve import load_causal_lm, load_tokenizer, resolve_model

    cfg: GenerateConfig = recipe.generate
    out = Path(out)
    if out.exists() and not overwrite:
        raise EmpoError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and out.is_dir():
        raise EmpoError(f"{out} is a folder; --out takes a .jsonl file path")
    if prompts_file is not None:
        records = records_from_jsonl(prompts_file, cfg.limit)
        source = str(prompts_file)
    else:
        records = records_from_ed(
            cfg.data_dir,
            cfg.split,
            limit=cfg.limit,
            system_prompt=cfg.system_prompt,
            max_context_turns=cfg.max_context_turns,
        )
        source = f"{cfg.data_dir or 'ED (default data root)'}:{cfg.split}"
    prompts = [r["context"] for r in records]
    plugin_meta: list[dict[str, Any] | None] = [None] * len(records)
    if cfg.plugin:
        plugin = get_plugin(cfg.plugin, **cfg.plugin_options)
        log.info("plug-in %s: preparing %d prompts", cfg.plugin, len(records))
        plugin.setup(records)
        for i, rec in enumerate(records):
            prompts[i], plugin_meta[i] = plugin.apply(rec["context"], rec)
    structured = cfg.reasoning == "structured"
    if structured:
        from empo.reasoning import with_structured_instruction

        prompts = [with_structured_instruction(p) for p in prompts]

    spec = recipe.model.name_or_path
    resolved = resolve_model(spec)
    log.info("loading %s", spec)
    tok = load_tokenizer(resolved, padding_side="left")
    four_bit = recipe.quantization.load_in_4bit
    model = load_causal_lm(resolved, recipe.model, recipe.quantization, merge_adapter=not four_bit)
    log.info(
        "answering %d dialogues from %s (batch %d, %s, max %d new tokens)",
        len(records),
        source,
        cfg.batch_size,
        "sampling" if cfg.do_sample else "greedy",
        cfg.max_new_tokens,
    )
    bar, on_batch = _progress_runner(len(records))
    with bar:
        res = generate_texts(
            model,
            tok,
            prompts,
            max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size,
            do_sample=cfg.do_sample,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed,
            max_prompt_tokens=cfg.max_prompt_tokens,
            on_batch=on_batch,
        )
    rows = []
    for i, rec in enumerate(records):
        row = dict(rec)
        row["response"] = res.texts[i]
        if structured:
            from empo.reasoning import split_reasoning

            row["response"], row["reasoning"] = split_reasoning(res.texts[i])
        row["model"] = spec
        if plugin_meta[i] is not None:
            row["plugin"] = plugin_meta[i]
        if plugin_meta[i] is not None or structured:
            row["prompt"] = prompts[i]
        rows.append(row)
    meta = {
        "model": spec,
        "base": resolved.base,
        "adapter": str(resolved.adapter) if resolved.adapter else None,
        "source": source,
        "n": len(rows),
        "generate": cfg.model_dump(mode="json"),
        "model_config": recipe.model.model_dump(mode="json"),
        "seconds": round(res.seconds, 3),
        "new_tokens": sum(res.new_tokens),
        "tokens_per_s": round(res.tokens_per_s, 2),
        "responses_per_s": round(res.responses_per_s, 4),
        "device": str(next(model.parameters()).device),
        "command": command,
        "git_sha": git_sha(),
        "versions": versions("torch", "transformers", "peft"),
    }
    write_jsonl_atomic(out, rows)
    from empo.io import write_json

    write_json(meta_path(out), meta)
    log.info(
        "wrote %d responses to %s in %.1f s (%.1f new tokens/s, %.2f responses/s)",
        len(rows),
        out,
        res.seconds,
        res.tokens_per_s,
        res.responses_per_s,
    )
    return GenerateSummary(
        out=out, n=len(rows), seconds=res.seconds, new_tokens=sum(res.new_tokens), meta=meta
    )
