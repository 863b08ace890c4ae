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
# 05 · Solutions

Each exercise of notebook 05 (what raters and judges pay for), solved and
checked, then short answers to the questions and the "Try it" prompts. The
cells tagged `solution` are the ones `make run` puts in place of the
lesson's stubs (same `ex-...` tag). The answers point at the numbers of
*your* run: they depend on the preset.
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
"""
## Exercise 5.2a: `pair_differences`

Where `flip` is True, answer A shows the rejected answer, so
`f(A) - f(B) = f_rejected - f_chosen` and the label is 0.
"""

# %% tags=["solution", "ex-pair-differences"]
import numpy as np


def pair_differences(f_chosen, f_rejected, flip):
    f_chosen = np.asarray(f_chosen, dtype=float)
    f_rejected = np.asarray(f_rejected, dtype=float)
    flip = np.asarray(flip, dtype=bool)
    x = np.where(flip[:, None], f_rejected - f_chosen, f_chosen - f_rejected)
    return x, (~flip).astype(float)


# %%
checks.check_pair_differences(pair_differences)

# %% [markdown]
"""
## Exercise 5.2b: `delta_prob`

σ(coef · sd) − 0.5: the probability that A is preferred, minus the 50% of a
pair with no difference. For small weights it is close to coef · sd / 4 (the
sigmoid's slope at 0 is 1/4), but it never passes ±0.5.
"""

# %% tags=["solution", "ex-delta-prob"]
import math


def delta_prob(coef, sd):
    return 1 / (1 + math.exp(-coef * sd)) - 0.5


# %%
checks.check_delta_prob(delta_prob)
print({w: round(delta_prob(w, 1.0), 3) for w in (0.1, 0.4, 1.0, 3.0)})

# %% [markdown]
"""
## Check your understanding

1. With A and B in random order, "A is chosen" happens half of the time
   whatever the features are, so the intercept fits ~0 and only the
   differences explain the label. If A were always the chosen answer, every
   y would be 1: the intercept alone would reach 100% "accuracy" and the
   weights would learn nothing (the optimum runs off to infinity).
2. The estimate barely moved; its uncertainty shrank about as 1/sqrt(n)
   (sqrt(7000 / 857) ≈ 2.9 times narrower), so an effect that could not be
   told from 0 on 857 pairs can be on 7,000. The effect is the same; what
   changed is what the data can rule out.
3. The judge trained on the train pairs: there its choices partly repeat the
   raters' labels it fitted, so a regression on them would say "the judge
   copies the raters" partly by memory. On eval pairs it must generalise,
   which shows what it actually learned to pay for.
4. No. Similar accuracy does not mean the same choices: compare the two
   pair by pair (5.4 prints how often the judge sides with the raters, and
   its coefficients show which features go with its choices). Both may be
   mostly reading length, which would make them agree; a judge can also
   reach the same accuracy with different right and wrong pairs.
5. No: the control (agree_no_opinion) pays as much, so the judge pays for
   the words "you're right" (or against "you're wrong") whatever the user
   said. Belief matching is the difference between the probe and its
   control, and it needs its own interval.

## Try it: what to expect

- **A stronger prior** (`l1=0.02`): the weakest features (usually
  `exclamation`, `praise`, `agreement`: rare in HH answers) go to exactly 0
  first; length survives longest. Held-out accuracy barely changes. Seconds.
- **harmless-base alone:** on red-team prompts, raters usually prefer the
  answer that declines, so `apology_refusal` tends to pay there and cost (or
  be flat) on the helpful subsets: one regression over both averages a
  positive and a negative. Seconds.
- **Your own opinion:** the probe rescores 2 × 120 texts (seconds). A small
  judge that mostly reads length should move little; compare with the
  agree_no_opinion control.
"""
