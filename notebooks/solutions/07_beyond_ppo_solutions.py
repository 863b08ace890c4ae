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
# 07 · Solutions

Each exercise of notebook 07, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag). The
answers point at the numbers of *your* run: they depend on the preset.
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
"""
## Exercise 7.3: `rloo_baseline`

Each answer's baseline is the mean of the other G − 1 rewards of its group.
"""

# %% tags=["solution", "ex-rloo-baseline"]
def rloo_baseline(scores):
    G = scores.size(1)
    others = scores.sum(1, keepdim=True) - scores
    return scores - others / (G - 1)


# %%
checks.check_rloo_baseline(rloo_baseline)

# %% [markdown]
"""
## Exercise 7.5: `dpo_loss`

The Bradley–Terry loss on the implicit rewards β (log π − log π_ref).
"""

# %% tags=["solution", "ex-dpo-loss"]
import torch.nn.functional as F


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    h = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * h).mean()


# %%
checks.check_dpo_loss(dpo_loss)

# %% [markdown]
"""
## Check your understanding: answers

1. A baseline that contains r_i moves with r_i, so E[(r_i − b) ∇log π] is no
   longer the policy gradient: it shrinks each answer's own signal by 1/G
   (and with G = 2 the two advantages become ±(r₁ − r₂)/2 instead of
   ±(r₁ − r₂)). Leaving it out keeps the estimate unbiased.
2. With G = 2, every prompt whose two answers both pass or both fail: for a
   prompt the policy solves with probability p, a share p² + (1 − p)². A larger
   G makes a mixed group likelier (the widget's curve falls) but costs G
   samples per prompt per update.
3. β log Z(x) cancels: it depends on the prompt only, and the Bradley–Terry
   loss only sees the difference of two answers' rewards to the same prompt.
   DPO inherits the Bradley–Terry assumption (a preference is σ of a reward
   difference) and the KL-regularised objective with the same β.
4. Online methods (PPO, GRPO, best-of-N) sample, get scored and can find
   answers the proxy over-rates: look for a proxy score that rises faster
   than the gold score in the frontier table. DPO never asks the proxy, so it
   cannot exploit it; it can only over-fit its fixed pairs.
5. See your run's 7.8 table: when both deltas are negative, probability went
   to answers that are in neither side of any pair (often longer or
   repetitive ones). An assistant then gets *less* likely to give the answer
   raters preferred, even while the loss falls.
6. When sampling is cheap compared with training, when N is small (the KL
   grows only like log N) and when the judge is good enough to trust its pick;
   it also keeps the policy's weights untouched.

**Try it.** RLOO and GRPO differ only in the advantage's scale: with a judge's
continuous scores they move about as far. A larger β keeps DPO closer to SFT
(smaller KL) and the log-probs fall less; a smaller β lets them fall further.
With a pass/fail reward, `frac_reward_zero_std` rises to the share the widget
predicts, and those updates are skipped.
"""
