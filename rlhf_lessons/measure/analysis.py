"""What separates chosen from rejected answers: length bias, words and phrases.

Taught in notebook 01 (browse the preference data). The phrase lists,
:func:`count_phrases` and the answer features at the end serve notebook 05 (reward
hacking): did a policy learn to game the judge with refusals, hedges, confident
words or flattery?

All functions take the DataFrame of :func:`rlhf_lessons.core.data.to_dataframe`: one row
per pair, with ``subset`` and the FINAL answers in ``chosen`` and ``rejected``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

# Curated phrase lists. Matching is case-insensitive on whole words, and curly
# apostrophes count as straight ones ("I can’t" matches "I can't").
REFUSAL_PHRASES = (
    "i'm sorry", "i am sorry", "i can't", "i cannot", "i won't", "i'm not able",
    "i am not able", "i'm unable", "i don't feel comfortable", "not appropriate",
)
HEDGE_PHRASES = (
    "i don't know", "i'm not sure", "i am not sure", "maybe", "perhaps", "i think",
    "might", "possibly", "probably", "it depends",
)
CONFIDENT_PHRASES = (
    "definitely", "certainly", "of course", "sure", "absolutely", "always",
    "the best", "you should", "here are", "here is",
)
PHRASE_GROUPS = {
    "refusal": REFUSAL_PHRASES,
    "hedge": HEDGE_PHRASES,
    "confident": CONFIDENT_PHRASES,
}

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_PATTERNS: dict[tuple[str, ...], re.Pattern] = {}


def _normalise(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'")


def tokenize(text: str) -> list[str]:
    """Lowercase words, keeping contractions whole: "I'm SURE!" -> ["i'm", "sure"]."""
    return _WORD_RE.findall(_normalise(text))


def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern:
    key = tuple(phrases)
    if key not in _PATTERNS:
        if not key or any(not p.strip() for p in key):
            raise ValueError(f"phrases must be non-empty strings, got {key!r}")
        # Longest first so "i am not sure" is not also counted as a shorter phrase
        # starting at the same place; the look-arounds demand whole words.
        alts = "|".join(re.escape(_normalise(p)) for p in sorted(key, key=len, reverse=True))
        _PATTERNS[key] = re.compile(rf"(?<![a-z0-9'])(?:{alts})(?![a-z0-9'])")
    return _PATTERNS[key]


def count_phrases(text: str, phrases) -> int:
    """How many times any of ``phrases`` occurs in ``text`` (whole words, any case).

    ``count_phrases("Sure! I'm not sure.", ("sure",)) == 2``; "ensure" does not count.
    Taught in notebook 01; notebook 05 uses it on policy samples.
    """
    if isinstance(phrases, str):
        phrases = (phrases,)
    return len(_phrase_pattern(tuple(phrases)).findall(_normalise(text)))


# --------------------------------------------------------------------------
# The length bias
# --------------------------------------------------------------------------
def answer_lengths(df: pd.DataFrame, unit: str = "chars") -> tuple[pd.Series, pd.Series]:
    """Lengths of the chosen and rejected final answers, in "chars" or "words"."""
    if unit == "chars":
        return df["chosen"].str.len(), df["rejected"].str.len()
    if unit == "words":
        return (df["chosen"].map(lambda s: len(s.split())),
                df["rejected"].map(lambda s: len(s.split())))
    raise ValueError(f"unit={unit!r}: expected 'chars' or 'words'")


def longer_wins_rate(df: pd.DataFrame, unit: str = "chars") -> pd.DataFrame:
    """How often the LONGER final answer is the chosen one, per subset and overall.

    Ties (equal length, e.g. chosen == rejected) are excluded from the rate and
    counted in ``n_ties``. Returns one row per subset plus an ``"overall"`` row, with
    columns n_pairs, n_ties, n_longer_chosen, rate (= n_longer_chosen / (n_pairs -
    n_ties); NaN when every pair is a tie). A judge that only measures length scores
    ``rate`` on these pairs.
    """
    chosen_len, rejected_len = answer_lengths(df, unit)
    frame = pd.DataFrame({
        "subset": df["subset"].to_numpy(),
        "tie": (chosen_len == rejected_len).to_numpy(),
        "longer_chosen": (chosen_len > rejected_len).to_numpy(),
    })

    def summarise(part: pd.DataFrame) -> dict:
        n, ties, wins = len(part), int(part["tie"].sum()), int(part["longer_chosen"].sum())
        decided = n - ties
        return {"n_pairs": n, "n_ties": ties, "n_longer_chosen": wins,
                "rate": wins / decided if decided else float("nan")}

    rows = {name: summarise(part) for name, part in frame.groupby("subset", sort=True)}
    rows["overall"] = summarise(frame)
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.name = "subset"
    return out


# --------------------------------------------------------------------------
# Words and phrases
# --------------------------------------------------------------------------
def word_rates(df: pd.DataFrame, min_count: int = 20) -> pd.DataFrame:
    """Per word: the share of chosen answers and of rejected answers that use it.

    Each answer counts a word once (document frequency), so one long answer cannot
    dominate. ``diff = chosen_rate - rejected_rate``: positive words are typical of
    what raters preferred. ``log_odds`` is log((c + 1) / (r + 1)) on the counts, a
    smoothed ratio. Words used in fewer than ``min_count`` answers (both sides
    together) are dropped. Sorted by ``diff``, largest first.
    """
    if min_count < 1:
        raise ValueError(f"min_count={min_count}: must be >= 1")
    n = len(df)
    if n == 0:
        raise ValueError("word_rates: the DataFrame has no rows")
    counts = {}
    for side in ("chosen", "rejected"):
        c = Counter()
        for text in df[side]:
            c.update(set(tokenize(text)))
        counts[side] = c
    words = set(counts["chosen"]) | set(counts["rejected"])
    rows = []
    for w in words:
        c, r = counts["chosen"][w], counts["rejected"][w]
        if c + r >= min_count:
            rows.append((w, c, r))
    out = pd.DataFrame(rows, columns=["word", "chosen_count", "rejected_count"])
    out["chosen_rate"] = out["chosen_count"] / n
    out["rejected_rate"] = out["rejected_count"] / n
    out["diff"] = out["chosen_rate"] - out["rejected_rate"]
    out["log_odds"] = np.log((out["chosen_count"] + 1) / (out["rejected_count"] + 1))
    return out.sort_values(["diff", "word"], ascending=[False, True]).reset_index(drop=True)


def top_words(rates: pd.DataFrame, n: int = 10, by: str = "diff") -> pd.DataFrame:
    """The ``n`` words most typical of chosen and the ``n`` most typical of rejected."""
    ranked = rates.sort_values([by, "word"], ascending=[False, True])
    top = ranked.head(n)
    bottom = ranked[~ranked.index.isin(top.index)].tail(n)
    return pd.concat([top, bottom]).reset_index(drop=True)


def phrase_rates(df: pd.DataFrame, groups: dict | None = None,
                 by_subset: bool = True) -> pd.DataFrame:
    """Share of chosen and of rejected answers that contain a phrase of each group.

    ``groups`` maps a name to a tuple of phrases (default :data:`PHRASE_GROUPS`:
    refusal, hedge, confident). Returns columns subset (or "all"), group, n_pairs,
    chosen_rate, rejected_rate, diff. Taught in notebook 01; notebook 05 reuses it.
    """
    groups = PHRASE_GROUPS if groups is None else groups
    parts = df.groupby("subset", sort=True) if by_subset else [("all", df)]
    rows = []
    for subset, part in parts:
        for name, phrases in groups.items():
            has = {side: part[side].map(lambda t, p=tuple(phrases): count_phrases(t, p) > 0)
                   for side in ("chosen", "rejected")}
            c, r = float(has["chosen"].mean()), float(has["rejected"].mean())
            rows.append({"subset": subset, "group": name, "n_pairs": len(part),
                         "chosen_rate": c, "rejected_rate": r, "diff": c - r})
    return pd.DataFrame(rows)


# Surface features of one answer (notebook 05): what a judge might pay for.
FLATTERY_PHRASES = (
    "great question", "good question", "excellent question", "you clearly",
    "you're right", "you are right", "you're absolutely right", "smart", "brilliant",
    "insightful", "you know a lot",
)


# Agreement with the user (notebook 05's rater regression). "You're right" is
# agreement, so the regression counts it here and takes it out of its praise list.
AGREEMENT_PHRASES = (
    "you're right", "you are right", "you're absolutely right", "i agree",
    "that's right", "that is right", "that's true", "good point", "exactly",
)


FEATURES = ("words", "confident", "hedge", "refusal", "flattery", "exclamations",
            "repetition")


def repetition(text: str, n: int = 2) -> float:
    """Fraction of the word ``n``-grams that repeat an earlier one, in [0, 1).

    ``"a b a b" -> bigrams ab, ba, ab -> 1/3``. Fewer than one n-gram gives 0.
    Degenerate RL text ("great great great ...") drives it towards 1.
    """
    if n < 1:
        raise ValueError(f"repetition: n={n} must be >= 1")
    words = tokenize(text)
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def _without(text: str, phrases: Sequence[str]) -> str:
    # Blank out whole-word matches of ``phrases`` (same matching as count_phrases).
    norm = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    alts = "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))
    return re.sub(rf"(?<![a-z0-9'])(?:{alts})(?![a-z0-9'])", " | ", norm)


def answer_features(text: str) -> dict[str, float]:
    """The surface features of one answer (see :data:`FEATURES`).

    words: whitespace-separated words; confident / hedge / refusal / flattery:
    phrase counts (:func:`rlhf_lessons.measure.analysis.count_phrases`, whole words, any
    case); exclamations: "!" count; repetition: :func:`repetition` of bigrams.
    Confident words are counted outside hedge phrases, so "I'm not sure" is one
    hedge and not also a confident "sure".
    """
    if not isinstance(text, str):
        raise TypeError(f"answer_features: expected a str, got {type(text).__name__}")
    return {
        "words": float(len(text.split())),
        "confident": float(count_phrases(_without(text, HEDGE_PHRASES),
                                         CONFIDENT_PHRASES)),
        "hedge": float(count_phrases(text, HEDGE_PHRASES)),
        "refusal": float(count_phrases(text, REFUSAL_PHRASES)),
        "flattery": float(count_phrases(text, FLATTERY_PHRASES)),
        "exclamations": float(text.count("!")),
        "repetition": repetition(text),
    }


def feature_table(texts: Sequence[str]):
    """One row of :func:`answer_features` per text (a DataFrame)."""
    return pd.DataFrame([answer_features(t) for t in texts], columns=list(FEATURES))


def feature_means(texts: Sequence[str]) -> dict[str, float]:
    """Mean of each feature over ``texts`` (all 0 for no texts)."""
    if not len(texts):
        return {k: 0.0 for k in FEATURES}
    return {k: float(v) for k, v in feature_table(texts).mean().items()}
