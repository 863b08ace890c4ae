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
# 04 · Solutions

Each exercise of notebook 04, solved and checked, then short answers to the
questions and the "Try it" prompts. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag).
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
r"""
## Exercise 4.3.3: `kl_k3`

*Explain:* there $r = 1$, so $(r - 1) - \log r = 0 - 0 = 0$; and since
$\log r \le r - 1$ for every $r > 0$, k3 is never negative.
"""

# %% tags=["solution", "ex-kl-k3"]
import torch


def kl_k3(logprobs, ref_logprobs):
    r = torch.exp(ref_logprobs - logprobs)  # p_ref / p
    return (r - 1) - torch.log(r)


# %%
checks.check_kl_k3(kl_k3)

# %% [markdown]
"""
## Exercise 4.3.4: `gae_batched`

*Explain:* without the mask, $V_{t+1}$ at the last real token is the value
model's guess at a padded position, and GAE keeps summing padded "rewards":
the episode seems to go on after it ended, and the advantages of real tokens
change with the amount of padding.
"""


# %% tags=["solution", "ex-gae"]
def gae_batched(rewards, values, mask, gamma, lam):
    r, v = rewards * mask, values * mask  # the episode ends at the last token
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[:, 0])
    for t in reversed(range(r.size(1))):
        v_next = v[:, t + 1] if t + 1 < r.size(1) else torch.zeros_like(last)
        delta = r[:, t] + gamma * v_next - v[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        adv[:, t] = last
    return adv, (adv + v) * mask


# %%
checks.check_gae(gae_batched)

# %% [markdown]
"""
## Exercise 4.3.5: `clipped_surrogate`

*Explain:* with A = 1 and ρ = 1.5, −Aρ = −1.5 and −A·clip(ρ) = −1.2: the max
is −1.2, the clipped term, whose gradient is 0. The token has moved enough.
"""


# %% tags=["solution", "ex-clipped-surrogate"]
def clipped_surrogate(new_logprobs, old_logprobs, advantages, mask,
                      cliprange):
    ratio = torch.exp((new_logprobs - old_logprobs) * mask)
    clipped = ratio.clamp(1 - cliprange, 1 + cliprange)
    loss = torch.max(-advantages * ratio, -advantages * clipped)
    return (loss * mask).sum() / mask.sum()  # mean over real tokens


# %%
checks.check_clipped_surrogate(clipped_surrogate)

# %% [markdown]
r"""
## Check your understanding

1. The tokens were drawn from the policy's distribution *at that
   temperature*, so the KL must compare the two distributions the tokens came
   from and would come from. With the reference at T = 1 and sampling at
   0.7, the sharpened policy differs from the flat reference even before any
   training: the KL starts well above 0 and the penalty punishes the
   temperature, not learning.
2. k1's expectation under the policy is the KL, which is ≥ 0: negative
   tokens are balanced by positive ones, so the sum over an answer is right on
   average (noisy per answer). k3 = (r − 1) − log r ≥ 0 because log r ≤ r − 1.
3. The judge scores the whole answer, once it is finished; spreading it would
   claim to know which tokens earned it. GAE carries it back: each earlier
   token's advantage gets the later rewards weighted by (γλ)^k, minus what
   the value model expected.
4. The minibatch is scored by the very policy that sampled it, not yet
   updated, so new and old log-probs are equal and ρ = exp(0) = 1. If not,
   the log-probs are computed differently (temperature, padding, positions,
   dropout): `approxkl` and `clipfrac` would be non-zero at the first
   minibatch (and `ratio` ≠ 1).

## Try it: what to expect

- **`missing_eos_penalty = 0`:** nothing punishes answers that never stop, so
  if the judge likes longer answers the EOS rate falls and the answers grow
  to the token budget. A new 4.5 run: about as long as 4.5 (a few minutes in
  the default preset). Not measured here: compare your EOS-rate and
  answer-length curves.
- **Count "!" instead of "you":** "!" is one token that fits anywhere, so
  the rule reward usually climbs faster than for "you", and the KL grows as
  the answers fill with "!". About the time of 4.4.
- **Zero-head value model:** `rl.make_value_model(policy=policy)` starts with
  value 0 everywhere; `loss/value_avg` starts higher and falls as the head
  learns; the judge-copy starts closer to the scores. Same run time as 4.5.
"""
