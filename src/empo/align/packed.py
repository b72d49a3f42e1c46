"""Packed DPO: the prompt is computed ONCE per pair, and only completion tokens go through the LM head.

TRL's ``DPOTrainer`` runs ``prompt + chosen`` and ``prompt + rejected`` as two padded sequences, so every prompt
token is computed twice by the policy (and twice more by the reference), and on devices without Triton its fused
LM head scores every position, prompt and padding included. Here a pair is ONE sequence::

    tokens     p0 p1 p2 | c0 c1 c2 | r0 r1
    positions   0  1  2 |  3  4  5 |  3  4        (rejected restarts where chosen started)
    segment     P  P  P |  C  C  C |  R  R        (R never attends to C: a 4-D attention mask)

so the hidden states of ``P + C`` and ``P + R`` are exactly those of the two separate sequences. The log-prob of
``c0`` and of ``r0`` both come from ``p2``'s hidden state; each later token from its predecessor in its own segment.
Only those completion positions are projected through the LM head (TRL's chunked log-prob kernel, which never
materialises the ``[tokens, vocab]`` logits), and the loss is one of :mod:`empo.align.losses`.

Used for DPO/IPO when ``train.prefix_sharing`` is on, the attention is ``sdpa`` or ``eager``, the loss types are in
:data:`~empo.align.losses.PACKED_LOSSES`, and no FSDP/DeepSpeed sharding is active; otherwise TRL's own path runs.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from trl import DPOTrainer

from empo.align.losses import PACKED_LOSSES, combined_loss

# Plain logging (a child of the "empo" logger): this module is imported by bench/align.py on GPU machines that have
# torch/transformers/trl/peft but not empo's CLI dependencies (rich, pydantic, polars).
log = logging.getLogger("empo.align.packed")

PROMPT, CHOSEN, REJECTED, PAD = 0, 1, 2, -1


@dataclass
class PackedPairCollator:
    """Batch ``prompt_ids``/``chosen_ids``/``rejected_ids`` rows as packed ``[P C R]`` sequences (right-padded).

    Returns ``input_ids``, ``position_ids``, ``segment`` (``(B, L)``) and the flattened completion positions to
    score: ``score_row``, ``score_src`` (the position whose hidden state predicts the token), ``score_tgt`` (the
    token's position) and ``score_side`` (0 chosen, 1 rejected). Reference log-probs pass through when present.
    """

    pad_token_id: int

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        seqs, positions, segments = [], [], []
        rows, srcs, tgts, sides = [], [], [], []
        for b, ex in enumerate(examples):
            p, c, r = list(ex["prompt_ids"]), list(ex["chosen_ids"]), list(ex["rejected_ids"])
            np_, nc, nr = len(p), len(c), len(r)
            if np_ == 0 or nc == 0 or nr == 0:
                raise ValueError("packed pairs need a non-empty prompt, chosen and rejected completion")
            seqs.append(p + c + r)
            positions.append(list(range(np_ + nc)) + list(range(np_, np_ + nr)))
            segments.append([PROMPT] * np_ + [CHOSEN] * nc + [REJECTED] * nr)
            # chosen: token at np_+k is predicted from position np_+k-1 (the first from the last prompt token)
            for k in range(nc):
                rows.append(b), srcs.append(np_ + k - 1), tgts.append(np_ + k), sides.append(0)
            # rejected: token at np_+nc+k is predicted from np_+nc+k-1, except the first: from the last prompt token
            for k in range(nr):
                (
                    rows.append(b),
                    srcs.append(np_ - 1 if k == 0 else np_ + nc + k - 1),
                    tgts.append(np_ + nc + k),
                )
                sides.append(1)
        length = max(len(s) for s in seqs)
        batch = len(seqs)
        input_ids = torch.full((batch, length), self.pad_token_id, dtype=torch.long)
        position_ids = torch.zeros((batch, length), dtype=torch.long)
        segment = torch.full((batch, length), PAD, dtype=torch.long)
        for b, (s, pos, seg) in enumerate(zip(seqs, positions, segments, strict=True)):
            n = len(s)
            input_ids[b, :n] = torch.tensor(s)
            position_ids[b, :n] = torch.tensor(pos)
            # padding continues the positions (any value works: padding is never attended to, never scored)
            position_ids[b, n:] = torch.arange(max(pos) + 1, max(pos) + 1 + length - n)
            segment[b, :n] = torch.tensor(seg)
        out = {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "segment": segment,
            "score_row": torch.tensor(rows, dtype=torch.long),
            "score_src": torch.tensor(srcs, dtype=torch.long),
            "score_tgt": torch.tensor(tgts, dtype=torch.long),
            "score_side": torch.tensor(sides, dtype=torch.long),
        }
        for key in ("ref_chosen_logps", "ref_rejected_logps"):
            if key in examples[0]:
                out[key] = torch.tensor([float(ex[key]) for ex in examples], dtype=torch.float32)
        return out


def packed_attention_mask(segment: torch.Tensor, as_bool: bool, dtype: torch.dtype) -> torch.Tensor:
    """``(B, 1, L, L)`` mask: causal, no padding keys, and rejected tokens never see chosen tokens.

    ``as_bool``: True = attend (for SDPA); otherwise additive (0 or the dtype's minimum, for eager attention).
    Padding queries attend to the real tokens before them, so no row is fully masked (no NaN).
    """
    length = segment.shape[1]
    idx = torch.arange(length, device=segment.device)
    causal = idx[None, :] <= idx[:, None]
    key_ok = (segment != PAD)[:, None, :]
    crossing = (segment[:, :, None] == REJECTED) & (segment[:, None, :] == CHOSEN)
    allowed = (causal[None] & key_ok & ~crossing)[:, None]
    if as_bool:
        return allowed
    zero = torch.zeros((), dtype=dtype, device=segment.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def _unwrap_causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    from accelerate.utils import extract_model_from_parallel
    from peft import PeftModel

    model = extract_model_from_parallel(model)
    if isinstance(model, PeftModel):
        model = model.get_base_model()
    return model


def packed_logps(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Summed completion log-probs of a packed batch: ``(chosen, rejected, chosen_tokens, rejected_tokens)``.

    ``model`` is called as a whole (so DDP/PEFT wrappers run their forward) with ``logits_to_keep=1``; the
    backbone's last hidden states are taken with a forward hook and only completion positions are scored.
    """
    from trl.kernels import ChunkedLogProbFunction

    lm = _unwrap_causal_lm(model)
    backbone = lm.base_model
    impl = getattr(lm.config, "_attn_implementation", "sdpa")
    captured: dict[str, torch.Tensor] = {}

    def grab(_module, _args, output):
        captured["h"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    segment = inputs["segment"]
    param_dtype = next(p for p in lm.parameters() if p.is_floating_point()).dtype
    device_type = segment.device.type
    autocast = torch.is_autocast_enabled(device_type)
    mask_dtype = torch.get_autocast_dtype(device_type) if autocast else param_dtype
    mask = packed_attention_mask(segment, as_bool=impl != "eager", dtype=mask_dtype)
    handle = backbone.register_forward_hook(grab)
    try:
        model(
            input_ids=inputs["input_ids"],
            attention_mask=mask,
            position_ids=inputs["position_ids"],
            use_cache=False,
            logits_to_keep=1,
        )
    finally:
        handle.remove()
    hidden = captured["h"]
    rows, src, tgt, side = inputs["score_row"], inputs["score_src"], inputs["score_tgt"], inputs["score_side"]
    head = lm.get_output_embeddings()
    states = hidden[rows, src].to(head.weight.device)
    targets = inputs["input_ids"][rows, tgt].to(head.weight.device)
    token_logps = ChunkedLogProbFunction.apply(
        states, head.weight, head.bias, targets, 1.0, 32768, None, 1.0, ()
    )[0]
    batch = segment.shape[0]
    slot = (rows * 2 + side).to(token_logps.device)
    sums = torch.zeros(batch * 2, dtype=token_logps.dtype, device=token_logps.device).index_add(
        0, slot, token_logps
    )
    counts = torch.zeros(batch * 2, dtype=torch.float32, device=token_logps.device).index_add(
        0, slot, torch.ones_like(token_logps, dtype=torch.float32)
    )
    sums, counts = sums.view(batch, 2), counts.view(batch, 2)
    return sums[:, 0], sums[:, 1], counts[:, 0], counts[:, 1]


def packing_blockers(model: torch.nn.Module, args: Any, sharded: bool = False) -> list[str]:
    """Why the packed path cannot run for this model/config (empty: it can)."""
    reasons = []
    lm = _unwrap_causal_lm(model)
    impl = getattr(lm.config, "_attn_implementation", "sdpa")
    if impl not in ("sdpa", "eager"):
        reasons.append(f"attention implementation {impl!r} (packed pairs need sdpa or eager)")
    text_cfg = lm.config.get_text_config()
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
        if getattr(text_cfg, attr, None) not in (None, 1.0):
            reasons.append(f"the model scales its logits ({attr})")
    loss_types = args.loss_type if isinstance(args.loss_type, list) else [args.loss_type]
    unsupported = [t for t in loss_types if t not in PACKED_LOSSES]
    if unsupported:
        reasons.append(f"loss type(s) {unsupported} (packed: {', '.join(PACKED_LOSSES)})")
    if args.ld_alpha is not None or args.use_weighting or args.f_divergence_type != "reverse_kl":
        reasons.append("ld_alpha / use_weighting / f_divergence_type")
    if sharded or args.fsdp or args.deepspeed:
        reasons.append("FSDP/DeepSpeed sharding")
    if getattr(text_cfg, "output_router_logits", False):
        reasons.append("a mixture-of-experts model")
    if not hasattr(lm, "get_output_embeddings") or lm.get_output_embeddings() is None:
        reasons.append("no output embeddings")
    return reasons


class EmpoDPOTrainer(DPOTrainer):
    """``DPOTrainer`` with packed pairs (see the module docstring), a length column kept for length-grouped
    batches, and its own sorted no-grad pass for precomputed reference log-probs. With ``packed=False`` it is
    TRL's trainer plus the length column."""

    def __init__(self, *args: Any, packed: bool = True, **kwargs: Any) -> None:
        self._packed_requested = packed
        self._packed = False
        super().__init__(*args, **kwargs)

    # TRL calls _precompute_ref_logps from __init__, so the packed decision must be made before: it is made on the
    # first call of _use_packed, which needs self.model and self.args (both set by then).
    def _use_packed(self) -> bool:
        if not hasattr(self, "_packed_decided"):
            self._packed_decided = True
            if self._packed_requested:
                sharded = bool(
                    getattr(self, "is_fsdp_enabled", False) or getattr(self, "is_deepspeed_enabled", False)
                )
                blockers = packing_blockers(self.model, self.args, sharded)
                if blockers:
                    log.info("packed pairs off (TRL's forward instead): %s", "; ".join(blockers))
                else:
                    self._packed = True
                    self._packed_collator = PackedPairCollator(pad_token_id=self._tokenizer.pad_token_id)
                    log.info(
                        "packed pairs: the prompt is computed once per pair, only completions are scored"
                    )
        return self._packed

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and "length" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "length"]

    def get_train_dataloader(self):
        if self._use_packed():
            self.data_collator = self._packed_collator
        return super().get_train_dataloader()

    def get_eval_dataloader(self, eval_dataset=None):
        if self._use_packed():
            self.data_collator = self._packed_collator
        return super().get_eval_dataloader(eval_dataset)

    # ------------------------------------------------------------------------------------------------ reference
    @contextlib.contextmanager
    def _reference(self):
        """Context in which ``model`` computes the reference: the adapter-disabled policy, or ``ref_model``."""
        from accelerate.utils import is_peft_model
        from trl.models.utils import disable_gradient_checkpointing
        from trl.trainer.utils import use_adapter

        if self.ref_model is not None:
            with torch.no_grad():
                yield self.ref_model
            return
        unwrapped = self.accelerator.unwrap_model(self.model)
        adapter = contextlib.nullcontext()
        if is_peft_model(unwrapped):
            adapter = use_adapter(unwrapped, adapter_name="ref" if "ref" in unwrapped.peft_config else None)
        with (
            torch.no_grad(),
            disable_gradient_checkpointing(self.model, self.args.gradient_checkpointing_kwargs),
            adapter,
        ):
            yield self.model

    def _precompute_ref_logps(self, dataset, name: str, batch_size: int):
        started = time.perf_counter()
        try:
            return self._precompute_packed(dataset, name, batch_size)
        finally:
            self.precompute_seconds = getattr(self, "precompute_seconds", 0.0) + time.perf_counter() - started

    def _precompute_packed(self, dataset, name: str, batch_size: int):
        if not self._use_packed():
            return super()._precompute_ref_logps(dataset, name, batch_size)
        from tqdm.auto import tqdm

        if "ref_chosen_logps" in dataset.column_names:
            return dataset
        cols = ["prompt_ids", "chosen_ids", "rejected_ids"]
        data = dataset.select_columns(cols).to_dict()
        n = len(dataset)
        sizes = [len(a) + len(b) + len(c) for a, b, c in zip(*(data[c] for c in cols), strict=True)]
        order = sorted(range(n), key=lambda i: sizes[i])
        bs = self.args.precompute_ref_batch_size or 2 * batch_size
        chosen = [0.0] * n
        rejected = [0.0] * n
        device = self.accelerator.device
        was_training = self.model.training
        self.model.eval()
        try:
            with self._reference() as ref, self.accelerator.autocast():
                for start in tqdm(range(0, n, bs), desc=f"Reference log-probs ({name}, packed)"):
                    idx = order[start : start + bs]
                    batch = self._packed_collator([{c: data[c][i] for c in cols} for i in idx])
                    batch = {k: v.to(device) for k, v in batch.items()}
                    c_logps, r_logps, _, _ = packed_logps(ref, batch)
                    for j, i in enumerate(idx):
                        chosen[i] = float(c_logps[j])
                        rejected[i] = float(r_logps[j])
        finally:
            self.model.train(was_training)
        dataset = dataset.add_column("ref_chosen_logps", chosen)
        return dataset.add_column("ref_rejected_logps", rejected)

    # --------------------------------------------------------------------------------------------------- loss
    def _compute_loss(self, model, inputs, return_outputs):
        if not self._use_packed():
            return super()._compute_loss(model, inputs, return_outputs)
        mode = "train" if self.model.training else "eval"
        chosen_logps, rejected_logps, n_chosen, n_rejected = packed_logps(model, inputs)
        if "ref_chosen_logps" in inputs:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            with self._reference() as ref:
                ref_chosen, ref_rejected, _, _ = packed_logps(ref, inputs)
        ref_chosen = ref_chosen.to(chosen_logps.dtype)
        ref_rejected = ref_rejected.to(chosen_logps.dtype)
        loss = combined_loss(
            self.loss_types,
            self.loss_weights,
            chosen_logps,
            rejected_logps,
            ref_chosen,
            ref_rejected,
            n_chosen,
            n_rejected,
            beta=self.beta,
            label_smoothing=self.label_smoothing,
        )
        gather = self.accelerator.gather_for_metrics
        chosen_rewards = self.beta * (chosen_logps.detach() - ref_chosen)
        rejected_rewards = self.beta * (rejected_logps.detach() - ref_rejected)
        metrics = self._metrics[mode]
        if mode == "train":
            real = (inputs["segment"] != PAD).sum()
            self._total_train_tokens += int(gather(real).sum().item())
        metrics["num_tokens"] = [self._total_train_tokens]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
        metrics["rewards/accuracies"].append(
            gather((chosen_rewards > rejected_rewards).float()).mean().item()
        )
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
        metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
        if return_outputs:
            from types import SimpleNamespace

            return loss, SimpleNamespace(
                logits=None, chosen_logps=chosen_logps, rejected_logps=rejected_logps
            )
        return loss
