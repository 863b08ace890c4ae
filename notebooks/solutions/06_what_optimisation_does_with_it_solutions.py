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
# 06 · Solutions

Each exercise of notebook 06, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag). The
answers point at the numbers of *your* run: they depend on the preset.
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
r"""
## Exercise 6.4: `bon_kl`

The KL grows only like log N: each extra nat of distance costs about e
times more samples per prompt, which is why best-of-N stays close to the
reference while PPO can travel far in a few minutes.
"""

# %% tags=["solution", "ex-bon-kl"]
import math


def bon_kl(n):
    return math.log(n) - (n - 1) / n


# %%
checks.check_bon_kl(bon_kl)
print({n: round(bon_kl(n), 3) for n in (1, 2, 16, 64)})

# %% [markdown]
"""
## Exercise 6.6: `ece`

*Explain:* its ECE is 0 (50% sure, right 50% of the time): perfectly
calibrated, and useless, since it never tells right from wrong. Calibration
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
"""
## Check your understanding

1. Read the 6.2 table at N = 64 against p0 = 0.5, and the pairwise rate
   printed under it. Selection over a fixed pool can only move the share as
   far as the judge's preference separates the feature from the spread of
   the other candidates' scores: a δ that is small next to that spread moves
   the pick only a little, even at N = 64.
2. Put δ (in std units) and β into p0·e^(δ/β)/(p0·e^(δ/β) + 1 − p0). The
   exponent is δ/β: halving β doubles it, so the same small δ becomes a
   near-certain feature when the KL leash is loose.
3. PPO only reweights what the policy samples: an answer it never writes gets
   no reward and no gradient, and the tilt of p0 = 0 is 0. It would take
   exploration (a higher temperature, seeded demonstrations, SFT data with
   the opener) or a policy that writes it sometimes.
4. Read the 6.4 verdict. Limits: n ≤ K samples only reach a KL bound of a
   few nats; the gold judge is weak (about 0.59 accuracy) and the proxy
   imitates it closely, so they disagree rarely; a few dozen prompts.
5. Compare the `held-out acc` column across b: a small bias barely moves
   accuracy on human labels, while `judge_effect` grows with b. The bias is
   invisible in the usual metric, visible only with a controlled rewrite.
6. Compare `marker rate` after PPO with the tilt prediction printed under
   the table. A short run (a dozen updates at a small learning rate) stays
   near the reference; the formula gives the optimum, which PPO only
   approaches.
7. A fitted T > 1 flattens the distribution: the model was over-confident
   at T = 1 (its probabilities too peaked for how often it is right).

## Try it: what to expect

- **b = 0.5:** the marked answer wins 75% of the one-marked pairs; the
  judge's δ for the marker grows, and held-out accuracy drops a little.
  Only 6.5 re-runs (the embeddings are cached; the PPO run trains again).
- **40 updates:** the KL and the marker rate move further; compare with the
  tilt prediction. About three times the PPO time of 6.5.
- **p0 = 0.1:** the share at N = 1 is 0.1; selection moves it by a
  similar amount in log-odds, so a rare feature gains fewer points.
"""
