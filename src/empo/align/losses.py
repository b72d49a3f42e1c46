"""Pairwise preference losses as pure functions on sequence log-probabilities (checked by hand in the tests).

They match TRL 1.16's ``DPOTrainer`` losses of the same name, so the packed DPO path in
:mod:`empo.align.packed` optimises exactly what ``DPOConfig(loss_type=...)`` asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Loss types the packed (prefix-sharing) DPO path computes itself; others use TRL's own forward.
PACKED_LOSSES = ("sigmoid", "hinge", "ipo", "robust", "sft")


def preference_loss(
    loss_type: str,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_tokens: torch.Tensor,
    rejected_tokens: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Per-pair loss, shape ``(batch,)``.

    ``*_logps`` are summed log-probabilities of each completion under the policy and the reference;
    ``*_tokens`` are the completions' token counts (IPO and SFT are per token).

    - ``sigmoid`` (DPO): ``-log sigmoid(beta * ((c - c_ref) - (r - r_ref)))``
    - ``hinge``: ``relu(1 - beta * delta)``
    - ``ipo``: ``((c - c_ref)/n_c - (r - r_ref)/n_r - 1/(2 beta))^2``
    - ``robust``: the noise-corrected sigmoid loss with flip rate ``label_smoothing``
    - ``sft``: negative log-likelihood of the chosen tokens (mean over the batch's chosen tokens)
    """
    import torch
    import torch.nn.functional as F

    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    delta = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * delta)
    if loss_type == "hinge":
        return torch.relu(1 - beta * delta)
    if loss_type == "ipo":
        ipo_delta = chosen_ratio / chosen_tokens.clamp(min=1) - rejected_ratio / rejected_tokens.clamp(min=1)
        return (ipo_delta - 1 / (2 * beta)) ** 2
    if loss_type == "robust":
        eps = label_smoothing
        return (-(1 - eps) * F.logsigmoid(beta * delta) + eps * F.logsigmoid(-beta * delta)) / (1 - 2 * eps)
    if loss_type == "sft":
        nll = -chosen_logps.sum() / chosen_tokens.sum().clamp(min=1)
        return nll.expand(chosen_logps.shape[0])
    raise ValueError(f"unknown loss type {loss_type!r}; the packed path computes: {', '.join(PACKED_LOSSES)}")


def combined_loss(
    loss_types: list[str],
    loss_weights: list[float] | None,
    *args: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Weighted sum of the batch means of several losses (TRL's ``loss_type=[...]``, ``loss_weights=[...]``)."""
    weights = loss_weights or [1.0] * len(loss_types)
    total = None
    for loss_type, weight in zip(loss_types, weights, strict=True):
        term = preference_loss(loss_type, *args, beta=beta, label_smoothing=label_smoothing).mean() * weight
        total = term if total is None else total + term
    assert total is not None
    return total
