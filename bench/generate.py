"""Bench: batched generation (empo generate) vs one prompt at a time (how EmPO generated), in one run.

Same model, same prompts (the first N dialogues of the ED test split, cut at their last listener turn, with the
default system prompt), same greedy settings; reports responses/s, new tokens/s, the speed-up and how many outputs
are identical between the two modes.

    python bench/generate.py                       # SmolLM2-135M on CPU, 64 prompts x 48 new tokens
    python bench/generate.py --batch-sizes 16,32,64 --device cuda --n 128

``--threads`` fixes torch's CPU threads (the default keeps torch's choice).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--data-dir", default=None, help="ED folder [default: the data root's, else the sample]")
    ap.add_argument("--n", type=int, default=64, help="prompts")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-sizes", default="16,32,64", help="comma-separated batch sizes to time")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="model dtype, as model.dtype in a recipe [default: auto, as `empo generate`: fp32 on CPU, bf16 on a "
        "GPU that has it]",
    )
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="write the numbers as JSON here")
    args = ap.parse_args()

    import torch

    from empo.generate.core import generate_texts, records_from_ed
    from empo.models.config import ModelConfig
    from empo.models.resolve import load_causal_lm, load_tokenizer, resolve_model

    if args.threads:
        torch.set_num_threads(args.threads)
    resolved = resolve_model(args.model)
    tok = load_tokenizer(resolved, padding_side="left")
    model = load_causal_lm(resolved, ModelConfig(device=args.device, dtype=args.dtype), merge_adapter=True)
    records = records_from_ed(args.data_dir, "test", limit=args.n)
    prompts = [r["context"] for r in records]
    kw = dict(max_new_tokens=args.max_new_tokens)
    generate_texts(model, tok, prompts[:2], max_new_tokens=4, batch_size=2)  # warm-up

    t = time.perf_counter()
    one = generate_texts(model, tok, prompts, batch_size=1, sort_by_length=False, **kw)
    rows = [("one at a time", 1, one, time.perf_counter() - t)]
    for bs in [int(x) for x in args.batch_sizes.split(",") if x]:
        t = time.perf_counter()
        res = generate_texts(model, tok, prompts, batch_size=bs, **kw)
        rows.append(("batched, sorted, left-padded", bs, res, time.perf_counter() - t))

    device = str(next(model.parameters()).device)
    hw = (
        torch.cuda.get_device_name(0)
        if device.startswith("cuda")
        else f"{platform.processor() or 'cpu'}, {torch.get_num_threads()} threads"
    )
    import os

    load = os.getloadavg()
    print(
        f"\n{args.model} on {device} ({hw}); {len(prompts)} ED test prompts, greedy, max {args.max_new_tokens} new tokens; "
        f"load average {load[0]:.1f} on {os.cpu_count()} cores\n"
    )
    print(
        "| mode | batch | seconds | responses/s | new tokens/s | speed-up | outputs identical to one-at-a-time |"
    )
    print("|---|---|---|---|---|---|---|")
    base = len(prompts) / rows[0][3]
    out = []
    for name, bs, res, secs in rows:
        rps = len(prompts) / secs
        same = sum(a == b for a, b in zip(res.texts, one.texts, strict=False))
        print(
            f"| {name} | {bs} | {secs:.1f} | {rps:.2f} | {sum(res.new_tokens) / secs:.0f} | {rps / base:.1f}x | {same}/{len(prompts)} |"
        )
        out.append(
            {
                "mode": name,
                "batch_size": bs,
                "seconds": secs,
                "responses_per_s": rps,
                "new_tokens_per_s": sum(res.new_tokens) / secs,
                "speedup": rps / base,
                "identical": same,
            }
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "device": device,
                    "dtype": str(next(model.parameters()).dtype),
                    "hardware": hw,
                    "n": len(prompts),
                    "max_new_tokens": args.max_new_tokens,
                    "load_average": load[0],
                    "rows": out,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
