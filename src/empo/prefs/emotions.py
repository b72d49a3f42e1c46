"""Emotion geometry for choosing rejected responses: the opposite map and a valence/arousal placement.

Both cover exactly the 32 EmpatheticDialogues labels (:data:`empo.data.ed.EMOTIONS`); the tests check it.
"""

from __future__ import annotations

import math
from functools import cache

from empo.data.ed import EMOTIONS

#: EmPO-style opposites (inspired by Plutchik's wheel), designed for this project. Each emotion maps to two labels:
#: its Plutchik counterpart where ED has one AND it flips valence (joy/sadness, trust/disgust, pride/shame,
#: love/remorse), then a mirror across the valence axis (a calm positive state for an agitated negative one, and
#: vice versa). Plutchik pairs that keep the valence (fear/anger, surprise/anticipation) are left out on purpose:
#: a listener's reply to an angry speaker ("that's outrageous!") is still a fair reply to a frightened one, which
#: is not what a rejected response should be. Every pair differs by at least 0.3 in valence (tested); no emotion
#: maps to itself. Two targets instead of one keep the rejected pool from being a single, possibly small, emotion.
OPPOSITES: dict[str, tuple[str, ...]] = {
    "afraid": ("confident", "excited"),
    "angry": ("content", "grateful"),
    "annoyed": ("grateful", "content"),
    "anticipating": ("disappointed", "lonely"),
    "anxious": ("content", "confident"),
    "apprehensive": ("confident", "hopeful"),
    "ashamed": ("proud", "confident"),
    "caring": ("guilty", "disgusted"),
    "confident": ("afraid", "embarrassed"),
    "content": ("anxious", "annoyed"),
    "devastated": ("joyful", "excited"),
    "disappointed": ("impressed", "proud"),
    "disgusted": ("trusting", "caring"),
    "embarrassed": ("proud", "confident"),
    "excited": ("devastated", "sad"),
    "faithful": ("jealous", "disgusted"),
    "furious": ("content", "faithful"),
    "grateful": ("annoyed", "jealous"),
    "guilty": ("proud", "caring"),
    "hopeful": ("devastated", "disappointed"),
    "impressed": ("disappointed", "disgusted"),
    "jealous": ("grateful", "trusting"),
    "joyful": ("sad", "devastated"),
    "lonely": ("caring", "joyful"),
    "nostalgic": ("annoyed", "furious"),
    "prepared": ("anxious", "apprehensive"),
    "proud": ("ashamed", "embarrassed"),
    "sad": ("joyful", "excited"),
    "sentimental": ("disgusted", "annoyed"),
    "surprised": ("lonely", "sad"),
    "terrified": ("confident", "content"),
    "trusting": ("disgusted", "jealous"),
}

#: (valence, arousal) in [0, 1] for each label: the NRC VAD Lexicon v1 (Mohammad 2018) entry of the label word
#: itself ("anticipating" is absent there; its noun "anticipation" is used). Looked up once; the lexicon itself
#: is not shipped (it is free for non-commercial research only).
VALENCE_AROUSAL: dict[str, tuple[float, float]] = {
    "afraid": (0.010, 0.775),
    "angry": (0.122, 0.830),
    "annoyed": (0.104, 0.783),
    "anticipating": (0.698, 0.539),
    "anxious": (0.281, 0.875),
    "apprehensive": (0.406, 0.592),
    "ashamed": (0.156, 0.588),
    "caring": (0.635, 0.469),
    "confident": (0.765, 0.324),
    "content": (0.764, 0.296),
    "devastated": (0.120, 0.544),
    "disappointed": (0.071, 0.472),
    "disgusted": (0.051, 0.773),
    "embarrassed": (0.184, 0.560),
    "excited": (0.908, 0.931),
    "faithful": (0.888, 0.333),
    "furious": (0.062, 0.953),
    "grateful": (0.958, 0.353),
    "guilty": (0.135, 0.770),
    "hopeful": (0.947, 0.357),
    "impressed": (0.806, 0.770),
    "jealous": (0.173, 0.855),
    "joyful": (0.990, 0.740),
    "lonely": (0.250, 0.226),
    "nostalgic": (0.458, 0.351),
    "prepared": (0.710, 0.480),
    "proud": (0.906, 0.700),
    "sad": (0.225, 0.333),
    "sentimental": (0.583, 0.378),
    "surprised": (0.784, 0.855),
    "terrified": (0.090, 0.902),
    "trusting": (0.857, 0.508),
}


@cache
def distance_matrix() -> tuple[tuple[float, ...], ...]:
    """Euclidean distances between the 32 labels in the valence/arousal plane, indexed like ``EMOTIONS``."""
    pts = [VALENCE_AROUSAL[e] for e in EMOTIONS]
    return tuple(tuple(math.dist(a, b) for b in pts) for a in pts)


def distance(a: str, b: str) -> float:
    """Valence/arousal distance between two labels."""
    return distance_matrix()[EMOTIONS.index(a)][EMOTIONS.index(b)]
