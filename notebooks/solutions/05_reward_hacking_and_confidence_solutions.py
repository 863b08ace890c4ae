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

Each exercise of notebook 05, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag). The
answers point at the numbers of *your* run: they depend on the preset.
"""

# %%
from rlhf_lessons import checks

# %% [markdown]
"""
## Exercise 5.4a: `ece`

*Explain:* its ECE is 0 (50% sure, right 50% of the time): perfectly
calibrated, and useless, since it never tells the sides apart. Calibration
and accuracy are different questions.
"""

# %% tags=["solution", "ex-ece"]
import numpy as np


def ece(confidences, correct, n_bins):
    conf = np.asarray(confidences, dtype=float)
    hit = np.asarray(correct, dtype=float)
    b = np.minimum((conf * n_bins).astype(int), n_bins - 1)  # 1.0: last bin
    total = 0.0
    for k in range(n_bins):
        in_b = b == k
        if in_b.any():
            gap = abs(hit[in_b].mean() - conf[in_b].mean())
            total += in_b.sum() / len(conf) * gap
    return float(total)


# %%
checks.check_ece(ece)

# %% [markdown]
r"""
## Exercise 5.4b: `bon_kl`

*Extend:* the lesson's cell doubles N until $\sqrt{\log N - (N-1)/N}$
reaches the furthest PPO run. Because the KL grows only like log N, a
distance PPO covers in a few minutes can need thousands of samples per prompt.
"""

# %% tags=["solution", "ex-bon-kl"]
import math


def bon_kl(n):
    return math.log(n) - (n - 1) / n


# %%
checks.check_bon_kl(bon_kl)
print({n: round(bon_kl(n), 3) for n in (1, 2, 16, 256)})

# %% [markdown]
"""
## Check your understanding

1. Read the 5.2 table of your run: the rewrite with the largest |mean| whose
   interval excludes 0. If, say, "longer" wins, the judge pays for length in
   itself, which it can only have learned from raters (or data) that
   preferred longer answers: a surface cue, not content.
2. If "confident" scores above "hedged", then PPO raises the probability of
   confident phrasings because they earn reward, whether or not the model
   knows the answer. Nobody asked for overconfidence: it is the cheapest way
   to please a judge that learned raters' taste for sure-sounding answers.
3. PPO would learn to praise the user, because praise pays and costs nothing:
   telling people what pleases them instead of what is true or useful is
   **sycophancy**.
4. Compare each row of the 5.3 drift table with its 5.2 effect. Reasons a
   feature may drift the "wrong" way: noise (few answers, short runs) and
   correlation: the judge pays for other features (e.g. length) that move
   this one along, or the KL penalty holds it back.
5. β = 0 removes the KL penalty, the only force keeping the policy near the
   reference: that run should reach the largest KL; compare its gold score
   with the largest β's in the sweep table (ours may or may not be lower).
6. Read the verdict printed in 5.4 ("gold rises, peaks inside, then falls").
   If "no": too few updates to travel far, a noisy gold mean
   (≈ 1/sqrt(n prompts)), a gold judge that is itself weak, and a proxy close
   to the gold judge can all hide the peak.
7. Answer length (the policy pads), a thumbs-up rate (flattery, agreeing
   with the user), a unit-test pass rate (special-casing the tests). You
   notice by measuring something the reward does not see: a held-out gold
   judgement, human spot checks, feature drift as in 5.3.

## Try it: what to expect

- **A rewrite of your own** ("As an expert, …"): a new row in the 5.2 table
  with its interval; an appeal to authority often moves a judge like
  "confident" does. Seconds: 5.2 only rescores the answers.
- **`length_reward`:** the policy writes longer answers until it hits the
  token budget and may stop ending with EOS; the KL grows. About the time of
  5.5 (a minute or two in the default preset).
- **β = 0.005:** a run between β = 0 and 0.05, usually between them in KL
  and scores. The saved runs are keyed by the whole `hc`, so the whole sweep
  trains again: the sweep's time plus one run (each run's seconds are
  printed under the sweep cell).
"""
