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
    """Fraction of the four sections present, non-empty and in the canonical order (1.0 = well-formed): the
    longest subsequence of the non-empty sections found whose order agrees with the canonical one, over four.

    ``<strategy><analysis><emotion><reply>`` scores 0.75 (analysis, emotion, reply are in order)."""
    parsed = parse_structured(text)
    rank = {name: i for i, name in enumerate(SECTIONS)}
    positions = [rank[n] for n in parsed.order if parsed.sections[n]]
    # Longest strictly increasing subsequence of canonical positions (at most four items: O(n^2) is nothing).
    best = [1] * len(positions)
    for j in range(len(positions)):
        for i in range(j):
            if positions[i] < positions[j]:
                best[j] = max(best[j], best[i] + 1)
    return max(best, default=0) / len(SECTIONS)


# ------------------------------------------------------------------------------------- prompts and SFT targets


def structured_system_prompt(system_prompt: str | None) -> str:
    """The system message of structured mode: the usual one (if any) followed by :data:`STRUCTURED_INSTRUCTION`."""
    if system_prompt and STRUCTURED_INSTRUCTION in system_prompt:
        return system_prompt
    return f"{system_prompt.strip()} {STRUCTURED_INSTRUCTION}" if system_prompt else STRUCTURED_INSTRUCTION


def with_structured_instruction(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """``messages`` with the structured instruction in its system message (one is added if there is none)."""
    if messages and messages[0].get("role") == "system":
        head = {**messages[0], "content": structured_system_prompt(messages[0].get("content"))}
        return [head, *messages[1:]]
    return [{"role": "system", "content": STRUCTURED_INSTRUCTION}, *messages]


# Surface cues of EPITOME's three mechanisms in a listener's reply (Sharma et al. 2020): emotional reactions (ER:
# expressing warmth, sorrow, joy), interpretations (IP: showing understanding, often through a similar experience)
# and explorations (EX: asking about the seeker's experience). A transparent rule, not a classifier: it labels the
# strategy the REAL reply used, so SFT targets never claim a strategy the reply does not carry out.
_ER_CUES = re.compile(
    r"\b(sorry|congrat\w*|glad|happy for|so happy|sad|awful|terrible|horrible|great|awesome|amazing|wonderful|"
    r"oh no|wow|yikes|ugh|scary|sucks|love|proud|hope|nice|cool|bummer|unfortunate)\b",
    re.IGNORECASE,
)
_IP_CUES = re.compile(
    r"\b(i understand|i know (how|what|that)|i can (imagine|see|relate|understand)|i('ve| have) (been|had|done)|"
    r"i had|i remember|i used to|me too|same (here|thing)|sounds like|that must|must (be|have)|i (would|'d) "
    r"(be|feel)|i feel (you|the same))\b",
    re.IGNORECASE,
)

STRATEGIES: dict[str, str] = {
    "ER": "react to their feelings with warmth",
    "IP": "show that I understand what they went through",
    "EX": "ask a question to learn more about their experience",
}
FALLBACK_STRATEGY = "respond briefly and keep the conversation going"


def strategy_for(reply: str) -> str:
    """The strategy a reply carries out, from EPITOME's mechanisms: a question -> exploration (EX), an
    understanding phrase ("I know how", "me too", "sounds like") -> interpretation (IP), an emotion word
    ("sorry", "congrats", "awful") -> emotional reaction (ER); several apply in the order ER, IP, EX; none -> a
    neutral fallback."""
    found = []
    if _ER_CUES.search(reply):
        found.append(STRATEGIES["ER"])
    if _IP_CUES.search(reply):
        found.append(STRATEGIES["IP"])
    if "?" in reply:
        found.append(STRATEGIES["EX"])
    return "; then ".join(found) if found else FALLBACK_STRATEGY


def _shorten(text: str, words: int) -> str:
    toks = text.split()
    return " ".join(toks) if len(toks) <= words else " ".join(toks[:words]) + " ..."


def analysis_for(situation: str | None, last_user: str, max_words: int = 40) -> str:
    """A short conversation analysis: the speaker's situation (ED's self-written summary) and what they just said."""
    parts = []
    if situation and situation.strip():
        parts.append(f"The user's situation: {_shorten(situation.strip(), max_words)}")
    parts.append(f'They just said: "{_shorten(last_user.strip(), max_words)}"')
    return " ".join(parts)


def structured_target(situation: str | None, emotion: str, last_user: str, reply: str) -> str:
    """A structured SFT target built from real data: analysis from the situation and the last user turn, the ED
    emotion label, the strategy the real reply uses (:func:`strategy_for`) and the real reply."""
    emotion_text = f"They feel {emotion}." if emotion else "Unclear."
    return format_structured(analysis_for(situation, last_user), emotion_text, strategy_for(reply), reply)
