"""Structured empathetic reasoning (PEER): analysis -> emotional state -> strategy -> reply.

A structured completion is four tagged sections, in this order::

    <analysis>what happened in the conversation so far</analysis>
    <emotion>the user's emotional state</emotion>
    <strategy>how to respond (e.g. acknowledge the feeling, then ask about ...)</strategy>
    <reply>the message the user sees</reply>

Only the reply is shown to users and scored by ``empo eval``; ``empo generate --reasoning structured`` keeps the rest
in a separate ``reasoning`` field. Everything here is pure string handling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTIONS: tuple[str, ...] = ("analysis", "emotion", "strategy", "reply")

STRUCTURED_INSTRUCTION = (
    "Before answering, think in four short tagged steps, in this order: "
    "<analysis>what has happened in the conversation</analysis> "
    "<emotion>how the user feels</emotion> "
    "<strategy>how you will respond to help them</strategy> "
    "<reply>your reply to the user</reply>. "
    "Only the text inside <reply> is shown to the user."
)

_TAG = re.compile(r"<(/?)(analysis|emotion|strategy|reply)>", re.IGNORECASE)


@dataclass(frozen=True)
class Structured:
    """A parsed completion: the content of each section found (stripped), in order of appearance."""

    sections: dict[str, str]
    order: tuple[str, ...]

    @property
    def reply(self) -> str | None:
        return self.sections.get("reply")


def parse_structured(text: str) -> Structured:
    """Find ``<name>...</name>`` sections. An unclosed last section runs to the end of the text."""
    sections: dict[str, str] = {}
    order: list[str] = []
    pos = 0
    while True:
        m = _TAG.search(text, pos)
        if m is None:
            break
        if m.group(1):  # a stray closing tag
            pos = m.end()
            continue
        name = m.group(2).lower()
        close = re.compile(rf"</{name}>", re.IGNORECASE).search(text, m.end())
        nxt = _TAG.search(text, m.end())
        if close is not None and (nxt is None or close.start() <= nxt.start()):
            body, pos = text[m.end() : close.start()], close.end()
        else:  # unclosed: up to the next opening tag or the end
            end = nxt.start() if nxt is not None else len(text)
            body, pos = text[m.end() : end], end
        if name not in sections:
            sections[name] = body.strip()
            order.append(name)
    return Structured(sections=sections, order=tuple(order))


def split_reasoning(text: str) -> tuple[str, str | None]:
    """``(reply, reasoning)``. Text with no tags is all reply (``reasoning=None``); tagged text without a ``<reply>``
    section has an empty reply (the model never got to answer)."""
    parsed = parse_structured(text)
    if not parsed.order:
        return text.strip(), None
    reasoning = "\n".join(f"<{n}>{parsed.sections[n]}</{n}>" for n in parsed.order if n != "reply")
    return (parsed.reply or ""), (reasoning or None)


def format_structured(analysis: str, emotion: str, strategy: str, reply: str) -> str:
    """The canonical structured target (used to build SFT data in structured mode)."""
    parts = {"analysis": analysis, "emotion": emotion, "strategy": strategy, "reply": reply}
    return "\n".join(f"<{k}>{parts[k].strip()}</{k}>" for k in SECTIONS)


def structure_score(text: str) -> float:
    """Fraction of the four sections present, non-empty and in the canonical order (1.0 = well-formed)."""
    parsed = parse_structured(text)
    expected = list(SECTIONS)
    got = [n for n in parsed.order if parsed.sections[n]]
    # Longest prefix-ordered subsequence of the canonical order that is present and non-empty.
    score, i = 0, 0
    for name in got:
        while i < len(expected) and expected[i] != name:
            i += 1
        if i < len(expected):
            score += 1
            i += 1
    return score / len(SECTIONS)
