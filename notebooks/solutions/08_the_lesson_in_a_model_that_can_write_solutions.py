# ---
# jupyter:
#   jupytext:
#     cell_markers: '"""'
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
"""
# 08 · Solutions

Each exercise of notebook 08, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag). The
answers point at the numbers of *your* run: they depend on the preset.
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
"""
## Exercise 8.2: `hedges`

Lower-case, then look for each phrase as whole words.
"""

# %% tags=["solution", "ex-hedge-detector"]
import re

HEDGE_WORDS = ("i think", "probably", "maybe", "might", "i'm not sure")


def hedges(text):
    t = text.lower().replace("\u2019", "'")
    return any(re.search(rf"(?<![a-z']){re.escape(p)}(?![a-z'])", t)
               for p in HEDGE_WORDS)


# %%
checks.check_hedge_detector(hedges)

# %% [markdown]
"""
## Exercise 8.6: `answers_needed`

The two-proportion sample size, rounded up.
"""

# %% tags=["solution", "ex-answers-needed"]
import math


def answers_needed(p0, p1):
    pbar = (p0 + p1) / 2
    num = (1.959964 * math.sqrt(2 * pbar * (1 - pbar))
           + 0.841621 * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2
    return math.ceil(num / (p1 - p0) ** 2)


# %%
checks.check_answers_needed(answers_needed)

# %% [markdown]
"""
## Exercise 8.6b: `tilted_share`

Odds in, odds times e^(δ/β), share out.
"""

# %% tags=["solution", "ex-tilted-share"]
def tilted_share(p0, delta, beta):
    odds = p0 / (1 - p0) * math.exp(delta / beta)
    return odds / (1 + odds)


# %%
checks.check_tilted_share(tilted_share)

# %% [markdown]
"""
## Check your understanding: answers

1. A share of 0 stays 0 under the tilt: π* ∝ π_ref · exp(r/β) can only
   reweight what the reference already writes. Optimisation finds features;
   it does not invent them from nothing. The SFT of 8.3 gave the writer
   hedges to lose.
2. A real rater sees two fluent answers and usually cannot check them: a
   sure-sounding wrong answer can look better than an honest hedge. HH's
   raters compared answers without a checker, so they are closer to the
   biased rater than to the honest one (notebook 05 measures what they paid
   for).
3. GRPO changes the weights (the adapters); best-of-N only chooses among
   samples, so N = 1 undoes it at once, at N times the sampling cost.
4. The rises and falls after GRPO rest on the run: if the judge's score did
   not rise during training, any change is noise or something else, and the
   verdict says so instead of "holds".

**Try it:** a milder bias makes the judge pay less for sounding sure, so the
tilt (and GRPO) moves the share less; a larger β pulls the writer back to the
SFT writer (the tilt's exponent δ/β shrinks); and a question with a wrong
belief shows belief matching in one answer.
"""
