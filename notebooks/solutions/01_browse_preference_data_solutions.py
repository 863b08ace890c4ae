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
# 01 · Solutions

Each exercise of notebook 01, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag). Try the
exercise yourself first: the check's hint is there to help.
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
r"""
## Exercise 1.2: `split_pair`

*Explain:* an answer can itself contain `"\n\nHuman: ... \n\nAssistant:"`
(a model that invented the next turn). Cutting each transcript at its own last
marker would then cut inside that answer. The history the two transcripts
*share* is the only safe guide.
"""


# %% tags=["solution", "ex-split-pair"]
def split_pair(chosen, rejected):
    marker = "\n\nAssistant:"
    k = 0  # 1. the length of the shared prefix
    while k < min(len(chosen), len(rejected)) and chosen[k] == rejected[k]:
        k += 1
    end = chosen.rfind(marker, 0, k) + len(marker)  # 2. back to a marker
    return chosen[:end], chosen[end:].strip(), rejected[end:].strip()


# %%
checks.check_split_pair(split_pair)

# %% [markdown]
"""
## Exercise 1.4.3: `longer_wins`

*Extend:* counting ties as losses puts them in the denominator only, so the
rate drops towards 0.5 or below by the share of ties; a length judge would
look worse than it is on the pairs where length decides anything.
"""


# %% tags=["solution", "ex-longer-wins"]
def longer_wins(chosen_len, rejected_len):
    won = chosen_len > rejected_len
    decided = chosen_len != rejected_len
    return won.sum() / decided.sum()


# %%
import numpy as np

checks.check_longer_wins_rate(longer_wins)
print(longer_wins(np.array([3, 5, 4]), np.array([2, 9, 4])))  # 1 of 2

# %% [markdown]
r"""
## Check your understanding

1. A joke has thousands of good answers, and writing good ones is slow;
   instruction data must pick one to copy. Choosing the funnier of two jokes
   takes seconds and needs no single right answer.
2. Read it from your 1.4.3 table (`longer_wins_rate` in
   `outputs/01_browse_preference_data/metrics.json`): above 0.5 means the
   longer answer usually wins, below 0.5 the shorter one. Either way that
   rate is free accuracy for a judge that only measures length, so a judge
   must beat max(rate, 1 − rate) on the same pairs before it has learned
   anything else.
3. In `harmless-base` the raters picked the *less harmful* answer, so a
   refusal of a harmful request wins; in the helpful subsets they picked the
   more *helpful* one, so a refusal of a fair request loses.
4. Every reported number would then be measured on data a model has seen: it
   would measure memory, not generalisation, and overstate quality.
5. Nothing: its loss is $\log 2$ whatever the scores, with a zero gradient
   (section 1.6). It only adds noise to the accuracy (a tie counts as wrong).

## Try it: what to expect

- `unit="words"`: the rates move by a point or two but keep their side of
  0.5 in each subset; the bias is about length, not the unit. Seconds.
- Flattery and "as an AI": few rows contain them, so read the counts beside
  the rates before you conclude; "as an AI" appears mostly in refusals
  (`harmless-base`). Seconds.
- A pair you disagree with: the judge learns the rater's choice all the
  same. A judge trained on noisy labels cannot be more accurate than the
  raters agree with each other. No run time: reading only.
"""
