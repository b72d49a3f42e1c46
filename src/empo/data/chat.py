"""The chat view of an ED dialogue, shared by training (build-prefs) and evaluation (generate).

A *cut* is the index of a listener (assistant) turn: the prompt is the dialogue before it, the reference (chosen)
response is ``d.turns[cut].text``. Building prompts through :func:`dialogue_messages` everywhere keeps the prompt a
model is trained on and the prompt it is evaluated on the same.
"""

from __future__ import annotations

from empo.data.ed import Dialogue

#: A short system prompt for an empathetic listener (the default of build-prefs and generate).
DEFAULT_SYSTEM_PROMPT = (
    "You are a warm, attentive listener. The user is telling you about something that happened to them. "
    "Reply in one or two sentences: acknowledge how they feel, and show that you understood what happened."
)


def listener_indices(d: Dialogue) -> list[int]:
    """Indices of the assistant turns that have at least one user turn before them (the possible cuts)."""
    out: list[int] = []
    seen_user = False
    for i, t in enumerate(d.turns):
        if t.role == "user":
            seen_user = True
        elif t.role == "assistant" and seen_user:
            out.append(i)
    return out


def context_start(cut: int, max_context_turns: int | None, roles: list[str] | tuple[str, ...]) -> int:
    """Index of the first turn kept before ``cut``: the last ``max_context_turns`` turns, moved forward past any
    assistant turn so the context starts with a user turn."""
    start = 0 if max_context_turns is None else max(0, cut - max_context_turns)
    while start < cut and roles[start] != "user":
        start += 1
    return start


def dialogue_messages(
    d: Dialogue,
    cut: int,
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT,
    max_context_turns: int | None = None,
) -> list[dict[str, str]]:
    """The conversational prompt for the response at ``cut``: an optional system message, then ``d.turns[:cut]``
    as ``{"role", "content"}`` messages (only the last ``max_context_turns`` of them if given), always starting
    with a user turn."""
    if not 0 < cut <= len(d.turns):
        raise ValueError(f"cut {cut} is out of range for dialogue {d.conv_id} with {len(d.turns)} turns")
    if max_context_turns is not None and max_context_turns < 1:
        raise ValueError(f"max_context_turns must be at least 1, got {max_context_turns}")
    start = context_start(cut, max_context_turns, [t.role for t in d.turns])
    if start >= cut:
        raise ValueError(f"dialogue {d.conv_id}: no user turn in the context before cut {cut}")
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.extend({"role": t.role, "content": t.text} for t in d.turns[start:cut])
    return messages
