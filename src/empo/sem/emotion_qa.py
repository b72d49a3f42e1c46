"""Ask an LLM to name the speaker's emotion (one of the 32 ED labels) and parse its answer robustly.

Used to measure the LLM's own emotion accuracy with and without the HEF hint (``bench/hef.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Surface forms an LLM uses for each ED emotion (nouns, adjectives, near synonyms) -> the ED label.
SYNONYMS: dict[str, str] = {
    "sadness": "sad", "unhappy": "sad", "upset": "sad", "sorrow": "sad", "heartbroken": "devastated",
    "trust": "trusting", "trusted": "trusting",
    "terror": "terrified", "horrified": "terrified",
    "care": "caring", "cared": "caring", "compassion": "caring", "compassionate": "caring",
    "disappointment": "disappointed",
    "faith": "faithful", "loyal": "faithful", "loyalty": "faithful",
    "joy": "joyful", "happy": "joyful", "happiness": "joyful", "glad": "joyful",
    "jealousy": "jealous", "envy": "jealous", "envious": "jealous",
    "disgust": "disgusted", "grossed": "disgusted",
    "surprise": "surprised", "shocked": "surprised", "shock": "surprised",
    "shame": "ashamed",
    "fear": "afraid", "scared": "afraid", "frightened": "afraid", "fearful": "afraid",
    "impressive": "impressed", "admiration": "impressed",
    "sentimentality": "sentimental",
    "devastation": "devastated",
    "excitement": "excited", "thrilled": "excited",
    "anticipation": "anticipating", "eager": "anticipating",
    "annoyance": "annoyed", "irritated": "annoyed", "irritation": "annoyed",
    "anxiety": "anxious", "nervous": "anxious", "worried": "anxious", "worry": "anxious",
    "fury": "furious", "enraged": "furious", "rage": "furious",
    "contentment": "content", "satisfied": "content", "satisfaction": "content",
    "loneliness": "lonely", "alone": "lonely", "isolated": "lonely",
    "anger": "angry", "mad": "angry",
    "confidence": "confident",
    "apprehension": "apprehensive",
    "guilt": "guilty",
    "embarrassment": "embarrassed",
    "gratitude": "grateful", "thankful": "grateful",
    "hope": "hopeful",
    "pride": "proud",
    "preparation": "prepared", "ready": "prepared",
    "nostalgia": "nostalgic",
}  # fmt: skip

_WORD = re.compile(r"[a-z]+")


def parse_emotion(text: str, labels: Sequence[str]) -> str | None:
    """The emotion an answer names: after an ``emotion:`` marker if there is one, else the earliest label (or
    known synonym of one) in the text. ``None`` when no label can be found."""
    low = text.lower()
    marker = re.search(r"emotion\s*(?:is|:)\s*", low)
    if marker:
        low = low[marker.end() :]
    known = set(labels)
    for word in _WORD.findall(low):
        if word in known:
            return word
        mapped = SYNONYMS.get(word)
        if mapped in known:
            return mapped
    return None


def question_messages(
    context: str | list[dict[str, str]], labels: Sequence[str], hint: str | None = None
) -> list[dict[str, str]]:
    """Chat messages asking which of ``labels`` the speaker feels; ``hint`` (the HEF paragraph) goes into the
    system message. ``context`` is the dialogue so far, as text or as chat messages."""
    if not isinstance(context, str):
        context = "\n".join(
            f"{'Speaker' if m['role'] == 'user' else 'Listener'}: {m['content']}"
            for m in context
            if m["role"] in ("user", "assistant")
        )
    system = "You recognise emotions in conversations."
    if hint:
        system += "\n\n" + hint
    user = (
        f"Conversation:\n{context}\n\n"
        f"Which emotion does the Speaker feel? Choose exactly one of: {', '.join(labels)}.\n"
        "Answer with that one word only."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
