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
# 03 · Solutions

Each exercise of notebook 03, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag).
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
r"""
## Exercise 3.1: `bt_loss`

*Explain:* $\sigma(x) > 1/2$ when $x > 0$, so $-\log\sigma(x) < \log 2$: a
pair ranked the right way costs less than a guess.
"""

# %% tags=["solution", "ex-pairwise-loss"]
import torch
import torch.nn.functional as F


def bt_loss(r_chosen, r_rejected):
    # logsigmoid is the numerically safe log(sigmoid(x))
    return -F.logsigmoid(r_chosen - r_rejected).mean()


# %%
checks.check_pairwise_loss(bt_loss)

# %% [markdown]
"""
## Exercise 3.2: `last_real`

*Extend:* this version works for left padding too, because it takes the
largest position whose mask is 1, wherever the padding is. `mask.sum(1) - 1`
passes the check (right padding) but fails on left padding.
"""


# %% tags=["solution", "ex-last-token-index"]
def last_real(mask):
    pos = torch.arange(mask.shape[1]).expand_as(mask)
    return torch.where(mask.bool(), pos, -1).max(dim=1).values


# %%
checks.check_last_token_index(last_real)
print(last_real(torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])))  # left: [3, 3]

# %% [markdown]
r"""
## Check your understanding

1. The loss depends on $r_c - r_r$ only, and $(r_c + k) - (r_r + k) =
   r_c - r_r$.
2. It skips the real EOS (it is a pad id) and reads the token before it:
   positions 2 and 1 instead of 3 and 2 in the example of 3.2. That position
   has seen the whole answer but not its end: the judge cannot tell a
   finished answer from one cut off mid-sentence. (The course does not
   measure how much accuracy this costs; a rule that read a padding position
   would still see the text, since a causal model's later positions attend to
   every earlier real token.)
3. If the intervals overlap you cannot say the judge beats the length rule
   (nor that it does not): the data are too few to tell. Only a clear gap, or
   a paired test on the same pairs, would show it.
4. Its idea of "better" comes from the helpful pairs, where the longer, more
   complying answer usually wins; on `harmless-base` the rater picked the
   safer answer, often a refusal or a shorter one, so the judge's preference
   points the other way.

## Try it: what to expect

- **margin = 1.0:** the loss now starts near $\log(1 + e^{1}) = 1.31$ instead
  of $\log 2 = 0.69$ and stays higher, since every pair must be won by a
  margin of 1; the accuracy curve moves about as before in a short demo. The
  demo's run time (seconds in the default preset) is unchanged.
- **"I'm not sure, but":** compare the two scores in the widget with the
  "hedged" row of 3.9; a negative hedged effect predicts the plain answer
  scores higher. Seconds.
- **SFT backbone:** `python scripts/ship.py judge --backbone sft --no-ship`
  trains a full judge: many minutes on 2 CPU cores (it prints its progress).
  Compare the accuracy and its interval with 3.6; an overlap means no
  difference can be claimed. Not measured in this notebook.
- **The sweep:** picking the best of several settings *by the eval number*
  tunes on the eval pairs, so that number is biased upwards (the winner was
  partly lucky). `judge_sweep.py` picks on a validation split carved from the
  train pairs and keeps the eval pairs for one final, honest measurement.
  It trains several judges: long on a CPU.
"""
