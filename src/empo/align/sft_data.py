"""SFT examples from EmpatheticDialogues: one sequence per dialogue, loss on the listener (assistant) turns only.

TRL 1.16's ``assistant_only_loss`` needs ``{% generation %}`` markers in the chat template, which SmolLM2's ChatML
template (and most others) lack, and its ``completion_only_loss`` trains ONE completion per row, so a dialogue with
four listener turns would be four rows that recompute the same context. Instead each dialogue is rendered once with
the model's own chat template, and the tokens of each assistant turn (including the end-of-turn token, so the
model learns to stop) are found by rendering the prefixes of the conversation: tokens between
``template(messages[:i], add_generation_prompt=True)`` and ``template(messages[:i+1])`` belong to turn ``i``. The
rows carry ``input_ids`` and ``labels`` (-100 outside listener turns), which ``SFTTrainer`` trains on as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from empo.errors import EmpoError

IGNORE = -100


@dataclass
class SFTReport:
    dialogues: int = 0
    examples: int = 0
    listener_turns: int = 0
    truncated_dialogues: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "dialogues": self.dialogues,
            "examples": self.examples,
            "listener_turns": self.listener_turns,
            "truncated_dialogues": self.truncated_dialogues,
            "dropped": dict(self.dropped),
        }


def _ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=True
    )
    return list(out["input_ids"])


def dialogue_example(
    tokenizer: Any, messages: list[dict[str, str]], max_length: int, only_last: bool = False
) -> tuple[dict[str, Any] | None, int, bool]:
    """``{"input_ids", "labels", "length"}`` for one conversation, the number of trained assistant turns, and
    whether trailing turns were cut to fit ``max_length`` (None if not even the first assistant turn fits).
    ``only_last`` trains the final message alone (the earlier assistant turns are context)."""
    full = _ids(tokenizer, messages)
    labels = [IGNORE] * len(full)
    end = 0
    turns = 0
    truncated = False
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or i == 0 or (only_last and i != len(messages) - 1):
            continue
        before = _ids(tokenizer, messages[:i], add_generation_prompt=True)
        after = _ids(tokenizer, messages[: i + 1])
        if full[: len(before)] != before or full[: len(after)] != after:
            raise EmpoError(
                "the chat template does not render a conversation as the concatenation of its turns, so the "
                "listener turns cannot be located for SFT; use a model with a prefix-stable template (ChatML, "
                "Llama-3, Mistral, Zephyr, ...)"
            )
        if len(after) > max_length:
            truncated = True
            break
        labels[len(before) : len(after)] = full[len(before) : len(after)]
        end = len(after)
        turns += 1
    if turns == 0:
        return None, 0, truncated
    return {"input_ids": full[:end], "labels": labels[:end], "length": end}, turns, truncated


def sft_rows(
    dialogues: list[Any],
    tokenizer: Any,
    system_prompt: str | None,
    max_length: int,
    reasoning: str = "plain",
) -> tuple[list[dict[str, Any]], SFTReport]:
    """SFT rows for ED dialogues (``empo.data.ed.Dialogue``): every listener turn after a user turn is trained.

    ``reasoning="structured"`` (PEER): one row per listener turn, whose target is
    :func:`empo.reasoning.structured_target` (analysis, the ED emotion, the strategy the real reply uses, then the
    real reply) after the plain earlier turns, with :data:`empo.reasoning.STRUCTURED_INSTRUCTION` in the system
    message: the same prompt ``empo generate --reasoning structured`` uses.
    """
    from empo.data.chat import listener_indices

    if reasoning == "structured":
        return _structured_rows(dialogues, tokenizer, system_prompt, max_length)
    report = SFTReport(dialogues=len(dialogues))
    rows = []
    for d in dialogues:
        cuts = listener_indices(d)
        if not cuts:
            report.drop("no_listener_turn")
            continue
        first_user = next(i for i, t in enumerate(d.turns) if t.role == "user")
        messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
        messages += [{"role": t.role, "content": t.text} for t in d.turns[first_user : cuts[-1] + 1]]
        example, turns, truncated = dialogue_example(tokenizer, messages, max_length)
        if example is None:
            report.drop("too_long")
            continue
        report.truncated_dialogues += truncated
        report.listener_turns += turns
        rows.append({**example, "conv_id": d.conv_id})
    report.examples = len(rows)
    return rows, report


def _structured_rows(
    dialogues: list[Any], tokenizer: Any, system_prompt: str | None, max_length: int
) -> tuple[list[dict[str, Any]], SFTReport]:
    from empo.data.chat import dialogue_messages, listener_indices
    from empo.reasoning import structured_system_prompt, structured_target

    system = structured_system_prompt(system_prompt)
    report = SFTReport(dialogues=len(dialogues))
    rows = []
    for d in dialogues:
        cuts = listener_indices(d)
        if not cuts:
            report.drop("no_listener_turn")
            continue
        kept = 0
        for cut in cuts:
            messages = dialogue_messages(d, cut, system_prompt=system)
            last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            reply = d.turns[cut].text
            target = structured_target(d.situation, d.emotion, last_user, reply)
            messages.append({"role": "assistant", "content": target})
            example, turns, _ = dialogue_example(tokenizer, messages, max_length, only_last=True)
            if example is None:
                report.drop("too_long")
                continue
            kept += 1
            report.listener_turns += turns
            rows.append({**example, "conv_id": d.conv_id, "cut": cut, "target": target})
        report.truncated_dialogues += kept < len(cuts)
    report.examples = len(rows)
    return rows, report
