"""Controlled rewrites of one answer, to see which surface features a judge pays for.

Taught in notebook 03 ("what does the judge reward?") and notebook 05 (what the
judge pays for); :func:`rlhf_lessons.measure.evaluate.judge_effects` measures them.

Each rewrite is a fixed template applied to the same answer, so the only thing that
changes between the original and the rewrite is the feature named: hedging,
confidence, length, flattery of the user. Deterministic: no sampling, no model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

HEDGE_PREFIX = "I'm not completely sure, but I think"
CONFIDENT_PREFIX = "Definitely."
FLATTERY_PREFIX = "Great question! You clearly know a lot about this."
FILLER = ("I hope this helps. Let me know if you have any other questions, "
          "and I will be happy to explain it in more detail.")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _lower_first(text: str) -> str:
    # keep "I" and acronyms as they are
    if len(text) > 1 and text[0].isupper() and not text[1].isupper() and text[0] != "I":
        return text[0].lower() + text[1:]
    return text


def hedged(answer: str) -> str:
    """``"I'm not completely sure, but I think <answer>"``."""
    answer = answer.strip()
    return f"{HEDGE_PREFIX} {_lower_first(answer)}" if answer else HEDGE_PREFIX + "."


def confident(answer: str) -> str:
    """``"Definitely. <answer>"``."""
    answer = answer.strip()
    return f"{CONFIDENT_PREFIX} {answer}" if answer else CONFIDENT_PREFIX


def first_sentence(answer: str) -> str:
    """The answer cut after its first sentence (unchanged if it has only one)."""
    parts = _SENTENCE_END.split(answer.strip(), maxsplit=1)
    return parts[0]


def padded(answer: str) -> str:
    """The answer plus a fixed, content-free closing paragraph (longer, no new facts)."""
    answer = answer.strip()
    return f"{answer} {FILLER}" if answer else FILLER


def flattering(answer: str) -> str:
    """``"Great question! You clearly know a lot about this. <answer>"``."""
    answer = answer.strip()
    return f"{FLATTERY_PREFIX} {answer}" if answer else FLATTERY_PREFIX


# The one list of rewrites: name -> template.
REWRITES: dict[str, Callable[[str], str]] = {
    "hedged": hedged,
    "confident": confident,
    "shorter": first_sentence,
    "longer": padded,
    "flattering": flattering,
}


def rewrite(answer: str, kind: str) -> str:
    """``answer`` rewritten by the template named ``kind`` (or "original")."""
    if kind == "original":
        return answer.strip()
    if kind not in REWRITES:
        raise ValueError(f"kind={kind!r}: expected 'original' or one of {list(REWRITES)}")
    return REWRITES[kind](answer)


def rewrite_all(answer: str) -> dict[str, str]:
    """``{"original": answer, name: rewrite(answer) for each rewrite}``."""
    return {"original": answer.strip(), **{k: f(answer) for k, f in REWRITES.items()}}
