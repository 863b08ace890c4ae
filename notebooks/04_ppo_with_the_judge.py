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
# 04 · PPO with the judge

Notebook 03 trained a judge that scores answers. Now the policy **learns from
the judge's scores on its own answers**, with PPO, the algorithm of InstructGPT
and of TRL's former `PPOTrainer`. A KL penalty keeps it close to the SFT model,
so it cannot simply drift into whatever text the judge happens to like.

**You will:**
- run ONE PPO update by hand: rollout → score → KL-shaped rewards → GAE →
  the clipped update, with the shapes and numbers at every step;
- check that the loop learns, first on a transparent rule reward;
- train the policy against the judge and read the curves TRL logs (score, KL,
  entropy, clip fraction, answer length);
- compare answers to held-out prompts before and after PPO;
- re-run with another KL coefficient or estimator and compare.

**Run time:** about 2.5 minutes on a 2-core CPU (default preset), most of it
the live PPO run against the judge (about 1.5 minutes); seconds in the fast
preset. A GPU is not needed. The rule-reward run (4.4) and the judge run's
second seed (4.6) travel finished in `data/runs/` and load in a second; edit
`rule_reward` and your version trains live (about 1 minute). A second
"Restart & Run All" loads the judge run from `outputs/` and says so; set
`RETRAIN = True` below (or `RLHF_LESSONS_RETRAIN=1`) to train all three
(2.5 minutes more).

**Instructor's path (50 minutes):** 4.1-4.2 (5 min), 4.3 one update by hand,
skipping the exercises' hints (20 min), 4.4 the rule-reward run (5 min; it
loads finished: change the rule in class and it trains live, about 1 min on
a 2-core laptop; start it, then talk), 4.5-4.6 the
judge run and the before/after table (15 min, live training about 1.5 min),
and the KL explorer if time is left. The exercises are homework.

**Exercises** (✏️, three here): each stub cell raises `NotImplementedError`
until you fill it in, and the cell under it checks your code and names the
mistake it sees. "Restart & Run All" stops at the first unsolved one (and
4.3.3 onwards needs your `kl_k3` and `clipped_surrogate`). `make run` fills
them from `notebooks/solutions/`, which also answers the questions at the end.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

RETRAIN = False  # True: train the PPO runs again instead of loading outputs/
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
c = cfg.ppo
print(f"preset {cfg.preset} | PPO: {c.n_updates} updates x "
      f"{c.rollout_batch} answers of <= {c.max_new_tokens} tokens, "
      f"lr {c.lr:g}, beta {c.kl_coef} ({c.kl_estimator}), "
      f"T = {c.temperature}")

# %% [markdown]
"""
## 4.1 The four models

| role | what it is | trained? |
|---|---|---|
| `policy` | the SFT model of notebook 02 | yes |
| `ref_policy` | a frozen copy of the SFT model | no: the KL anchor |
| `value_model` | predicts the return from each token on | yes, with `policy` |
| the reward | the judge of notebook 03 (or any Python function) | no |
"""

# %%
import copy

from rlhf_lessons.core import batching as bt
from rlhf_lessons.measure import evaluate as E
from rlhf_lessons.train import ppo
from rlhf_lessons.train import rollout as rl
from rlhf_lessons.course.artefacts import (
    judge_reward_fn,
    load_judge,
    load_policy,
    ppo_checkpoint,
)
from rlhf_lessons.core.generation import sample_responses
from rlhf_lessons.core.models import n_params

policy, tok = load_policy(cfg, "sft", device)
ref_policy = copy.deepcopy(policy).requires_grad_(False)
print(f"policy: {n_params(policy):,} parameters; EOS id {tok.eos_token_id}, "
      f"pad id {tok.pad_token_id}, padding side {tok.padding_side}")

# %% [markdown]
"""
The value model needs a starting point. Two standard choices (detail #7 of
Huang et al., "The N+ implementation details of RLHF with PPO", 2023):
- **a copy of the reward model**: its backbone already reads answers the way
  the judge does, and its head is on the score's scale (TRL's example);
- **a copy of the policy with a zero-initialised head**: V = 0 at first.

We take the judge's copy when there is a judge, and the zero head for the rule
reward (there is no reward model to copy then).
"""

# %%
judge, judge_tok, card = load_judge(cfg, device)
judge_fn = judge_reward_fn(judge, judge_tok, cfg.reward.max_len, device)
value_model = rl.make_value_model(reward_model=judge)
print(f"judge: {n_params(judge):,} parameters; value model: "
      f"{n_params(value_model):,} (a copy of the judge)")

# %% [markdown]
"""
## 4.2 Prompts: train split for PPO, eval split to judge the result

PPO prompts come from the **train** split only, in a seeded random order;
the before/after comparison uses **held-out** prompts from the eval split,
drawn across the four subsets in proportion (seeded). The data files start
with harmless-base, so "the first 64" would be red-team prompts only. We keep
single-turn prompts short enough for our small model's context.
"""

# %%
from rlhf_lessons.train.prompts import ppo_prompt_table, ppo_prompts
from rlhf_lessons.measure.evaluate import subset_counts

train_prompts = ppo_prompts(cfg, "train", tok)
eval_table = ppo_prompt_table(cfg, "eval", tok, n=cfg.budget.eval_prompts,
                              exclude=train_prompts)
eval_prompts = eval_table["prompt"].tolist()
eval_subsets = subset_counts(eval_table["subset"])
print(f"{len(train_prompts)} train prompts; {len(eval_prompts)} held-out "
      "(texts also in train excluded)")
print("held-out prompts per subset:", eval_subsets)

# %% [markdown]
"""
The judge's raw scores have an arbitrary offset and scale. PPO is easier to
tune when the score has mean 0 and std 1 **on the reference policy's own
answers** (Huang et al., 2023). We measure that on a stratified sample of
train prompts: the same call, prompts and seed as notebook 03's section 3.10,
so the two notebooks print the same two numbers.
"""

# %%
ref_table = ppo_prompt_table(cfg, "train", tok, n=cfg.budget.ref_prompts)
ref_train = E.sample_and_score(ref_policy, judge_fn, tok,
                               ref_table["prompt"].tolist(), cfg.ppo,
                               seed=cfg.seed)
norm = E.score_stats(ref_train.score)
print(f"judge on {len(ref_train)} reference answers: mean {norm[0]:.3f}, "
      f"std {norm[1]:.3f}")
print("prompts per subset:", subset_counts(ref_table["subset"]))

# %% [markdown]
"""
## 4.3 One PPO update, step by step

We work on copies, so the real run below starts from the SFT model.

### 4.3.1 Rollout: left-padded prompts, sampling at a temperature

Prompts are **left**-padded so every answer starts at the same column, and the
position ids count real tokens only. Sampling uses `top_k=0, top_p=1` and a
temperature T; the log-probs are those of the same tempered distribution.
"""

# %%
import torch

step_policy = copy.deepcopy(policy)
step_value = copy.deepcopy(value_model)
b_prompts = train_prompts[:cfg.ppo.rollout_batch]  # a random batch (shuffled)
seqs = bt.encode_prompts(tok, b_prompts, cfg.ppo.max_prompt_tokens)
p_ids, p_mask = bt.left_pad(seqs, tok.pad_token_id)
print("prompt ids:", tuple(p_ids.shape), "| real tokens per row:",
      p_mask.sum(1).tolist())
print("position ids of the most padded row:",
      bt.position_ids(p_mask)[p_mask.sum(1).argmin()].tolist())

# %%
gen = torch.Generator().manual_seed(cfg.seed)
raw_ids, logprobs, entropy = sample_responses(
    step_policy, p_ids, p_mask, cfg.ppo.max_new_tokens,
    cfg.ppo.temperature, tok.eos_token_id, gen)
print("sampled:", tuple(raw_ids.shape), "| logprobs:", tuple(logprobs.shape))
print("first answer's logprobs:", logprobs[0, :6].numpy().round(2))

# %% [markdown]
"""
Each answer is cut after its **first EOS**: what follows is padding and is
masked out of every sum and mean from here on. An answer that never emits EOS
gets a fixed penalty (`missing_eos_penalty`).
"""

# %%
r_ids, r_mask, has_eos = bt.truncate_after_eos(
    raw_ids, tok.eos_token_id, tok.pad_token_id)
answers = bt.decode_responses(tok, r_ids, r_mask)
print("answer lengths (tokens, EOS included):", r_mask.sum(1).int().tolist())
print(f"ended with EOS: {has_eos.float().mean():.0%}")
for p, a in list(zip(b_prompts, answers))[:2]:
    print("-", p.strip()[-70:], "->", repr(a.strip()[:120]))

# %% [markdown]
"""
### 4.3.2 Score

The judge reads each prompt + answer. The score is normalised with the
reference statistics of 4.2, then the missing-EOS penalty is subtracted.
"""

# %%
raw_scores = torch.tensor(judge_fn(b_prompts, answers))
scores = (raw_scores - norm[0]) / norm[1]
scores = rl.apply_missing_eos_penalty(
    scores, has_eos, cfg.ppo.missing_eos_penalty)
print("raw judge scores:", raw_scores.numpy().round(2))
print("normalised, penalised:", scores.numpy().round(2))

# %% [markdown]
r"""
### 4.3.3 KL-shaped rewards

How far has the policy $p$ drifted from the reference $p_\text{ref}$? The
answer tokens were sampled from $p$, so two per-token estimators of
$\mathrm{KL}(p \,\|\, p_\text{ref})$ are, with $r = p_\text{ref}/p$:

$$k_1 = \log p - \log p_\text{ref}, \qquad k_3 = (r - 1) - \log r.$$

- k1 is unbiased, but negative for some tokens;
- k3 is unbiased too, and never negative (because $\log r \le r - 1$).
"""


# %%
def kl_k1(logprobs, ref_logprobs):
    return logprobs - ref_logprobs


# %% [markdown]
r"""
✏️ **Exercise 4.3.3 (implement).** Write `kl_k3(logprobs, ref_logprobs)`:
per-token log-probs of the sampled tokens, any shape; return k3 per token,
same shape (no sum, no mean). *Explain:* why is k3 zero exactly where
$p = p_\text{ref}$?
"""


# %% tags=["exercise", "ex-kl-k3"]
def kl_k3(logprobs, ref_logprobs):
    raise NotImplementedError(
        "✏️ Exercise: write kl_k3, then re-run this cell and the check below")


# %%
from rlhf_lessons.course import checks

checks.check_kl_k3(kl_k3)

# %% [markdown]
r"""
<details><summary>Hint</summary>

**Idea:** k3 uses the ratio $p_\text{ref}/p$, and a difference of two log
probabilities is the log of a ratio. **Shape:** elementwise, `(B, R)` in and
out. **Pitfall:** the ratio the other way round, $p/p_\text{ref}$, gives a
different (still non-negative) number; the check names it.
</details>
"""

# %%
lp = torch.log(torch.tensor([0.5, 0.25]))  # two tokens: p
ref_lp = torch.log(torch.tensor([0.25, 0.5]))  # and p_ref
print("k1:", kl_k1(lp, ref_lp).numpy().round(3))
print("k3:", kl_k3(lp, ref_lp).numpy().round(3))

# %% [markdown]
"""
The second token is *less* likely under the policy than under the reference:
k1 counts it as a negative KL, k3 as a small positive one. Now the real
answers: the reference scores the same tokens, and padding is masked out.
"""

# %%
batch = rl.make_batch(p_ids, p_mask, r_ids, r_mask, has_eos)
with torch.no_grad():
    ref_logprobs = rl.response_logprobs(
        ref_policy, batch, cfg.ppo.temperature) * r_mask
logprobs, entropy = logprobs * r_mask, entropy * r_mask
k1 = kl_k1(logprobs, ref_logprobs) * r_mask
k3 = kl_k3(logprobs, ref_logprobs) * r_mask
print(f"sum of k1 {k1.sum():.2e}, sum of k3 {k3.sum():.2e}, "
      f"min k3 {k3.min():.2e}")

# %% [markdown]
r"""
The policy *is* the reference so far, so both KLs are 0 up to rounding.

Each answer token $t$ gets the reward

$$r_t = -\beta\,\mathrm{KL}_t + [\,t = T\,]\cdot\text{score},$$

where $T$ is the row's last real token (its EOS, if it has one). Padding
gets 0. So the judge speaks once per answer; the KL penalty speaks at every
token.
"""


# %%
def shape_rewards_inline(scores, kl, mask, beta):
    rewards = torch.where(mask.bool(), -beta * kl, 0.0)
    for i, n in enumerate(mask.sum(1).long().tolist()):
        rewards[i, n - 1] += scores[i]  # the score at the last real token
    return rewards


toy_mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
toy_kl = torch.full((2, 3), 0.1)
print(shape_rewards_inline(torch.tensor([2.0, -1.0]), toy_kl, toy_mask, 0.5))

# %% [markdown]
"""
On the rollout, with the course's β and KL estimator. At this first step the
score alone shapes the rewards:
"""

# %%
beta = cfg.ppo.kl_coef
kl = k1 if cfg.ppo.kl_estimator == "k1" else k3
rewards = shape_rewards_inline(scores, kl, r_mask, beta)
n0 = int(r_mask[0].sum())
print("rewards:", tuple(rewards.shape), "| row 0, last 4 real tokens:",
      rewards[0, max(0, n0 - 4):n0].numpy().round(3))

# %% [markdown]
"""
From now on the package does this work. First, a check that it computes the
same numbers as our three small functions:
"""

# %%
from torch.testing import assert_close

assert_close(k1, ppo.kl_per_token(logprobs, ref_logprobs, "k1") * r_mask)
assert_close(k3, ppo.kl_per_token(logprobs, ref_logprobs, "k3") * r_mask)
assert_close(rewards, ppo.shape_rewards(scores, kl, r_mask, beta)[0])
print("kl_k1, kl_k3, shape_rewards_inline: matches the package")

# %% [markdown]
r"""
### 4.3.4 Values and GAE

The value model predicts, before each answer token, the return still to come.
GAE mixes one-step errors $\delta_t = r_t + \gamma V_{t+1} - V_t$ into

$$A_t = \sum_k (\gamma\lambda)^k \delta_{t+k},$$

and the episode ends at the last real token ($V = 0$ after it). The textbook
loop, on one toy answer whose reward comes at the end:
"""


# %%
def gae_loop(rewards, values, mask, gamma, lam):
    adv = torch.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        n, last = int(mask[i].sum()), 0.0
        for t in reversed(range(n)):
            v_next = values[i, t + 1] if t + 1 < n else 0.0
            delta = rewards[i, t] + gamma * v_next - values[i, t]
            last = delta + gamma * lam * last
            adv[i, t] = last
    return adv


toy_r = torch.tensor([[0.0, 0.0, 1.0]])
print(gae_loop(toy_r, torch.zeros(1, 3), torch.ones(1, 3), 1.0, 0.5))

# %% [markdown]
r"""
With $V = 0$ and $\gamma\lambda = 0.5$ the final reward reaches earlier
tokens halved at each step back. Now on the rollout, with the value model's
predictions:
"""

# %%
with torch.no_grad():
    values = rl.response_values(step_value, batch) * r_mask
g, lam = cfg.ppo.gamma, cfg.ppo.lam
adv_loop = gae_loop(rewards, values, r_mask, g, lam)
print("values:", tuple(values.shape), "| row 0, first advantages:",
      adv_loop[0, :4].numpy().round(3))

# %% [markdown]
"""
The package's `gae` does the same sum as one (R × R) matrix product, with no
Python loop, and also returns the returns $G_t = A_t + V_t$:
"""

# %%
adv_vec, returns = ppo.gae(rewards, values, r_mask, g, lam)
assert_close(adv_loop, adv_vec)
print("gae_loop: matches the package (max diff "
      f"{(adv_loop - adv_vec).abs().max():.1e})")

# %% [markdown]
"""
✏️ **Exercise 4.3.4 (extend).** `gae_loop` walks every row in Python. Write
`gae_batched(rewards, values, mask, gamma, lam)` with ONE loop, backwards over
time, for the whole batch at once; return `(advantages, returns)`, each
`(B, R)` and 0 on padding. *Explain:* what goes wrong at a row's last real
token if the padding is not masked?
"""


# %% tags=["exercise", "ex-gae"]
def gae_batched(rewards, values, mask, gamma, lam):
    raise NotImplementedError(
        "✏️ Exercise: write gae_batched, then re-run this cell and the check "
        "below")


# %%
checks.check_gae(gae_batched)
adv_b, ret_b = gae_batched(rewards, values, r_mask, g, lam)
assert_close(adv_b, adv_vec)
assert_close(ret_b, returns)
print("gae_batched: matches the package on the rollout")

# %% [markdown]
"""
<details><summary>Hint</summary>

**Idea:** run backwards in time, carrying one running advantage per row.
**Shape:** a `(B,)` carry updated at each of the R steps, from the last to
the first. **Pitfalls:** after an answer's last real token the next value is
0, not whatever sits in the padding; and the returns (the value targets) are
the advantages plus the values, on real tokens only.
</details>
"""

# %% [markdown]
"""
Advantages are then **whitened** over the real tokens (mean 0, std 1), which
keeps the step size steady whatever the reward scale.
"""

# %%
advantages = bt.masked_whiten(adv_vec, r_mask)
print(f"advantages: mean {bt.masked_mean(advantages, r_mask):.2f}, "
      f"std {bt.masked_var(advantages, r_mask).sqrt():.2f} over "
      f"{int(r_mask.sum())} real tokens")

# %% [markdown]
"""
The package's `compute_advantages` does 4.3.3 and 4.3.4 in one call, on a
`Rollout` that bundles the tensors so far:
"""

# %%
ro = rl.Rollout(b_prompts, answers, batch, has_eos, logprobs, ref_logprobs,
                 entropy, values, raw_scores, scores)
adv = ppo.compute_advantages(ro, beta, cfg.ppo)
assert_close(adv["advantages"], advantages)
print("compute_advantages: matches the package")

# %% [markdown]
r"""
### 4.3.5 The clipped update

With the ratio $\rho_t = \pi_\text{new}(a_t) / \pi_\text{old}(a_t)$, the
policy loss is the mean over real tokens of

$$\max\big(-A_t\,\rho_t,\ -A_t\,\mathrm{clip}(\rho_t, 1 \pm \epsilon)\big).$$

Once a token's probability has moved by more than $\epsilon$ in the helpful
direction, the clipped term wins and its gradient stops. In the harmful
direction nothing is clipped: the max keeps the pessimistic term.
"""


# %% [markdown]
"""
✏️ **Exercise 4.3.5 (implement).** Write `clipped_surrogate(new_logprobs,
old_logprobs, advantages, mask, cliprange)`: all tensors `(B, R)`, `mask` 1
on real tokens; return the policy loss above, one number, the mean over real
tokens only. *Explain:* for A > 0 and ρ = 1.5, which term does the max pick?
"""


# %% tags=["exercise", "ex-clipped-surrogate"]
def clipped_surrogate(new_logprobs, old_logprobs, advantages, mask,
                      cliprange):
    raise NotImplementedError(
        "✏️ Exercise: write clipped_surrogate, then re-run this cell and the "
        "check below")


# %%
checks.check_clipped_surrogate(clipped_surrogate)

# %% [markdown]
"""
<details><summary>Hint</summary>

**Idea:** PPO takes the *pessimistic* of the clipped and unclipped
objectives; as a loss (the negative) that is the larger of the two.
**Shape:** per-token `(B, R)` terms, then one number. **Pitfalls:** the mean
must be over real tokens only (not `.mean()` over padding too), and `min`
of the losses is the classic sign slip.
</details>
"""

# %%
new, old = torch.log(torch.tensor([[0.6]])), torch.log(torch.tensor([[0.4]]))
for a in (1.0, -1.0):  # ratio 1.5, outside 1 ± 0.2
    A = torch.tensor([[a]])
    loss = clipped_surrogate(new, old, A, torch.ones(1, 1), 0.2)
    print(f"A = {a:+.0f}, ratio 1.5: loss {loss:.2f}")

# %% [markdown]
r"""
The value loss is clipped the same way, around the old values:

$$V^\text{clip}_t = V^\text{old}_t
  + \mathrm{clip}(V_t - V^\text{old}_t, \pm\epsilon_V),$$

and with the returns $G_t$ of 4.3.4 it is

$$\tfrac12\,\mathrm{mean}_t \max\big((V_t - G_t)^2,
  (V^\text{clip}_t - G_t)^2\big).$$

A value that jumps far from the old one is scored as if it had moved only
$\epsilon_V$, so the jump earns nothing.
"""


# %%
def clipped_value_loss(new_values, old_values, returns, mask,
                       cliprange_value):
    step = new_values - old_values
    v_clip = old_values + step.clamp(-cliprange_value, cliprange_value)
    loss = torch.max((new_values - returns) ** 2, (v_clip - returns) ** 2)
    return 0.5 * (loss * mask).sum() / mask.sum()


one = torch.ones(1, 1)  # V jumps from the old 0 straight to G = 1
vloss = clipped_value_loss(one, 0 * one, one, one, 0.2)
print(f"value loss {vloss:.2f} = 0.5 * (0.2 - 1)^2, not 0")

# %% [markdown]
"""
On the rollout's first minibatch (`rollout_batch / mini_batches` answers),
with the new log-probs and values of the policy and value model being
trained. Nothing has been trained yet, so the ratio is 1 up to rounding:
"""

# %%
mb = cfg.ppo.rollout_batch // cfg.ppo.mini_batches
b0, m0 = batch.index(torch.arange(mb)), r_mask[:mb]
with torch.no_grad():
    new_lp = rl.response_logprobs(step_policy, b0, cfg.ppo.temperature)
    new_v = rl.response_values(step_value, b0)
eps, eps_v = cfg.ppo.cliprange, cfg.ppo.cliprange_value
pg = clipped_surrogate(new_lp, logprobs[:mb], advantages[:mb], m0, eps)
vf = clipped_value_loss(new_v, values[:mb], returns[:mb], m0, eps_v)
print(f"first {mb} answers: pg_loss {pg:.4f}, vf_loss {vf:.4f}")

# %%
out = ppo.ppo_losses(new_lp, logprobs[:mb], advantages[:mb], new_v,
                     values[:mb], returns[:mb], m0, eps, eps_v)
assert_close(pg, out["pg_loss"])
assert_close(vf, out["vf_loss"])
print("clipped_surrogate, clipped_value_loss: matches the package")

# %% [markdown]
"""
`ppo_update` minimises `pg_loss + vf_coef * vf_loss` with these same losses,
for `ppo_epochs` passes over reshuffled minibatches:
"""

# %%
opt = ppo.make_optimizer(step_policy, step_value, cfg.ppo)
upd = ppo.ppo_update(step_policy, step_value, opt, ro, adv, cfg.ppo, gen)
print("first minibatch:", {k: round(v, 4) for k, v in upd["first"].items()})

# %% [markdown]
"""
At the first minibatch nothing has moved yet: the ratio is 1, approxkl and the
clip fraction are 0. Averaged over the whole update they have moved:
"""

# %%
keys = ["ratio", "approxkl", "clipfrac", "vf_clipfrac", "pg_loss", "vf_loss"]
print({k: round(upd[k], 4) for k in keys})

# %% [markdown]
"""
## 4.4 Sanity check: a transparent rule reward

Before trusting PPO with an opaque judge, give it a reward we can read: **one
point per "you" in the answer** (at most 5). If the loop is right, the count
must go up. The value model here is a zero-head copy of the policy. The run
of this very rule travels finished in `data/runs/`; change the rule (another
word, another cap) and the next cell trains your version, about a minute.
"""

# %%
import re

def rule_reward(prompts, answers):
    return [min(5, len(re.findall(r"\byou\b", a.lower()))) for a in answers]

rule_before = E.sample_and_score(
    ref_policy, rule_reward, tok, eval_prompts, cfg.ppo, seed=cfg.seed + 1)
print(f"held-out answers before: {rule_before.score.mean():.2f} points")
from rlhf_lessons.measure import verdicts as V

# power before training: a paired difference of two answers spreads about
# sqrt(2) times one answer's std
print(V.power_line("rise in 'you' per answer", len(rule_before),
                   V.min_detectable_mean(2 ** 0.5 * rule_before.score.std(),
                                         len(rule_before))))

# %%
import dataclasses

from rlhf_lessons.course.artefacts import loaded_or_trained, source_digest

rule_policy = copy.deepcopy(policy)
rule_cfg = dataclasses.replace(cfg.ppo, n_updates=cfg.budget.ppo_sanity_updates)
# named with the reward's source: edit rule_reward and your version trains afresh
rule_ck = ppo_checkpoint(cfg, f"rule-{source_digest(rule_reward)}")
t_run = time.time()
rule_run = ppo.train_ppo(
    rule_policy, ref_policy, rl.make_value_model(policy=rule_policy),
    rule_reward, tok, train_prompts, rule_cfg, seed=cfg.seed,
    checkpoint=rule_ck)
loaded_or_trained("the rule-reward PPO run", rule_ck,
                  rule_run.trained_now,
                  time.time() - t_run);

# %%
rule_after = E.sample_and_score(
    rule_policy, rule_reward, tok, eval_prompts, cfg.ppo, seed=cfg.seed + 1)
rule_initial, rule_final = rule_before.score.mean(), rule_after.score.mean()
rule_d = E.mean_with_error(rule_after.score - rule_before.score,
                           seed=cfg.seed)
print(f"'you' per held-out answer: {rule_initial:.2f} -> {rule_final:.2f} "
      f"({rule_d['mean']:+.2f}, 95% CI {rule_d['ci_low']:+.2f} to "
      f"{rule_d['ci_high']:+.2f}, n = {len(rule_after)}) after "
      f"{len(rule_run.metrics)} updates")
rule_claim = V.claim("PPO raises the rule reward ('you' per answer)",
                     rule_d["mean"], (rule_d["ci_low"], rule_d["ci_high"]),
                     len(rule_after),
                     curve_moved=V.curve_moved(rule_run.metrics["objective/raw_scores"]))
print("the loop learns:", rule_claim["verdict"])

# %%
from rlhf_lessons.course.plots import plot_metrics

import matplotlib.pyplot as plt

axes = plot_metrics(rule_run.metrics, ["objective/raw_scores", "objective/kl"],
                    x="step")
axes[0].set_title("Rule reward: 'you' per answer")
plt.close(axes[0].figure)
axes[0].figure

# %% [markdown]
"""
## 4.5 PPO with the judge

Now the real reward. First the held-out baseline: the reference policy's
answers to the eval prompts, scored by the judge. Its spread (std) is the unit
of the learning target: a gain of at least 1 std at a KL of at most 10 nats.
"""

# %%
ref_eval = E.sample_and_score(ref_policy, judge_fn, tok, eval_prompts,
                                cfg.ppo, seed=cfg.seed + 1)
ref_mean, ref_std = ref_eval.score.mean(), ref_eval.score.std(ddof=0)
print(f"reference on {len(ref_eval)} held-out prompts: mean {ref_mean:.3f}, "
      f"std {ref_std:.3f}")
# power before PPO runs, in reference std (a paired difference spreads about
# sqrt(2) of them); the course's target is a gain of at least 1
print(V.power_line("gain", len(ref_eval), V.min_detectable_mean(2 ** 0.5, len(ref_eval)),
                   " reference std", expected=1.0))

# %%
stats = norm if cfg.ppo.normalize_scores else None
judge_ck, t_run = ppo_checkpoint(cfg, "judge"), time.time()
run = ppo.train_ppo(policy, ref_policy, value_model, judge_fn, tok,
                    train_prompts, cfg.ppo, seed=cfg.seed, score_norm=stats,
                    checkpoint=judge_ck)
loaded_or_trained("the PPO run against the judge", judge_ck,
                  run.trained_now, time.time() - t_run);
cols = ["step", "objective/scores", "objective/kl", "objective/entropy",
        "policy/clipfrac_avg", "val/eos_rate", "response_length"]
run.metrics[cols].iloc[[0, len(run.metrics) // 2, -1]].round(2)

# %% [markdown]
"""
What to watch, in TRL's order: the **score** should rise, the **KL** should
stay between 0 and 10 nats, the **entropy** should not collapse toward 0 (a
policy that always writes the same answer), the **clip fraction** should stay
small (a big one means steps too large), and the **answer length** and **EOS
rate** tell whether the judge is being pleased by length alone.
"""

# %%
keys = ["objective/scores", "objective/kl", "objective/entropy",
        "policy/clipfrac_avg", "response_length", "val/eos_rate"]
axes = plot_metrics(run.metrics, keys, x="step")
plt.close(axes[0].figure)
axes[0].figure

# %% [markdown]
"""
TRL's `objective/entropy` is a **sum** over the answer's tokens, so it grows
with the answer's length. Per token, and beside the EOS rate (first and last
three updates of the run). A *collapse* is a fall toward 0: the policy always
writing the same words. A rise means it spreads its probability more widely;
with a KL leash that is allowed, and the lines below say which happened.
"""

# %%
m = run.metrics
ent_tok = m["objective/entropy"] / m["response_length"]
first, last = slice(0, 3), slice(-3, None)
for name, col in (("entropy per token (nats)", ent_tok),
                  ("answer length (tokens)", m["response_length"]),
                  ("EOS rate", m["val/eos_rate"])):
    print(f"{name:>25}: {col.iloc[first].mean():.2f} -> "
          f"{col.iloc[last].mean():.2f}")
collapsed = ent_tok.iloc[last].mean() < 0.5 * ent_tok.iloc[first].mean()
print("entropy collapse:", "yes" if collapsed else "no (per token)")

# %% [markdown]
r"""
## 4.6 Before and after, on held-out prompts

The same eval prompts, the same sampling seed, the reference policy vs the PPO
policy. The KL column is $\sum_t \log\pi - \log\pi_\text{ref}$ over each
answer's tokens.
"""

# %%
final_eval = E.sample_and_score(policy, judge_fn, tok, eval_prompts,
                                  cfg.ppo, seed=cfg.seed + 1,
                                  ref_policy=ref_policy)
final_mean, final_kl = final_eval.score.mean(), final_eval.kl.mean()
gain = (final_mean - ref_mean) / ref_std
d = E.mean_with_error((final_eval.score - ref_eval.score) / ref_std,
                      seed=cfg.seed)
print(f"held-out judge score: {ref_mean:.3f} -> {final_mean:.3f} "
      f"= {gain:+.2f} reference std (95% CI {d['ci_low']:+.2f} to "
      f"{d['ci_high']:+.2f}, n = {len(final_eval)}); mean KL {final_kl:.2f} "
      "nats")
gain_claim = V.claim("PPO raises the judge's held-out score (reference std)",
                     d["mean"], (d["ci_low"], d["ci_high"]), len(final_eval),
                     curve_moved=V.curve_moved(run.metrics["objective/scores"]))
print("PPO raises the judge's score:", gain_claim["verdict"])
print(f"target (>= +1 std at KL <= 10): "
      f"{'met' if gain >= 1 and final_kl <= 10 else 'NOT met'}")

# %% [markdown]
"""
### Is this one run typical? A second seed

That interval covers the 64 held-out prompts, not the training run. PPO
samples its own training data, so a run with another seed draws other answers
from its first token on and ends as another policy. A second run from the same
SFT model, with only the seed changed (it travels finished in `data/runs/`, so
the series stays within its time; `RETRAIN = True` trains it here):
"""

# %%
policy_b = copy.deepcopy(ref_policy)
judge_ck_b, t_run = ppo_checkpoint(cfg, "judge-seed2"), time.time()
run_b = ppo.train_ppo(policy_b, ref_policy, rl.make_value_model(reward_model=judge),
                      judge_fn, tok, train_prompts, cfg.ppo, seed=cfg.seed + 1000,
                      score_norm=stats, checkpoint=judge_ck_b)
loaded_or_trained("the second PPO run against the judge", judge_ck_b,
                  run_b.trained_now, time.time() - t_run)
eval_b = E.sample_and_score(policy_b, judge_fn, tok, eval_prompts, cfg.ppo,
                            seed=cfg.seed + 1, ref_policy=ref_policy)
d_b = E.mean_with_error((eval_b.score - ref_eval.score) / ref_std, seed=cfg.seed)
gain_b, kl_b = (eval_b.score.mean() - ref_mean) / ref_std, eval_b.kl.mean()
for name, g_, dd, kl in (("seed A (above)", gain, d, final_kl),
                         ("seed B", gain_b, d_b, kl_b)):
    print(f"{name:15s} gain {g_:+.2f} reference std (95% CI {dd['ci_low']:+.2f} to "
          f"{dd['ci_high']:+.2f}, n = {len(final_eval)}), mean KL {kl:.2f} nats")
overlap = d["ci_low"] <= d_b["ci_high"] and d_b["ci_low"] <= d["ci_high"]
print(f"the two gains differ by {gain - gain_b:+.2f} std; their prompt intervals "
      f"{'overlap' if overlap else 'do NOT overlap: the run itself moves the result more than the prompts do'}")

# %% [markdown]
"""
Two runs are not a distribution, but they bound what one run can claim: if
the lines above differ by more than their intervals, a single run says that
PPO raises the judge's score, not by how much. Averaging several seeds (and
reporting their spread) is how papers answer "by how much".
"""

# %%
by_subset = final_eval.assign(
    subset=eval_table["subset"].to_numpy(),
    gain=(final_eval.score - ref_eval.score) / ref_std)
by_subset.groupby("subset")["gain"].agg(["count", "mean"]).round(2)

# %% [markdown]
"""
The table shows helpful-* prompts only, so that it is safe to project:
harmless-base prompts are red-team requests, some of them offensive. They are
in every number above. Set `SHOW_ALL = True` to see every prompt.
"""

# %%
import pandas as pd

SHOW_ALL = False  # True: include the harmless-base (red-team) prompts
pd.set_option("display.max_colwidth", 70)
table = pd.DataFrame({
    "subset": eval_table["subset"],
    "prompt": [p.replace("Human:", "").replace("Assistant:", "").strip()[-60:]
               for p in ref_eval.prompt],
    "SFT answer": ref_eval.answer, "SFT score": ref_eval.score.round(2),
    "PPO answer": final_eval.answer, "PPO score": final_eval.score.round(2),
})
shown = table if SHOW_ALL else table[table.subset.str.startswith("helpful")]
shown.head(6)

# %%
print(f"answer length (tokens): {ref_eval.n_tokens.mean():.1f} -> "
      f"{final_eval.n_tokens.mean():.1f}; ended with EOS: "
      f"{ref_eval.has_eos.mean():.0%} -> {final_eval.has_eos.mean():.0%}")
if final_eval.n_tokens.nunique() > 1:
    corr = final_eval[["score", "n_tokens"]].corr().iloc[0, 1]
    print(f"correlation of score and length after PPO: {corr:+.2f}")
else:
    print("every answer has the same length: no length correlation")

# %%
dlen = final_eval.n_tokens.mean() - ref_eval.n_tokens.mean()
print("length-only gain:", "possible" if dlen > 2 else
      f"no: the held-out length moved {dlen:+.1f} tokens")

# %% [markdown]
"""
Read the table and the numbers above together. Had the length risen a lot,
with score and length strongly correlated, the judge might be rewarding
length more than quality: the "proxy" reward rises while real quality need
not. The line above says whether that happened here. Notebooks 05 and 06
measure what the judge pays for and what optimisation does with it.

### Explore: another KL coefficient, another estimator

A smaller β lets the policy move further from the reference for more score; a
bigger one holds it back. The widget re-runs PPO from the SFT model for a few
updates with your β and estimator, and draws it beside the run above (grey).
"""

# %%
from functools import partial

from rlhf_lessons.course.artefacts import load_or_build
from rlhf_lessons.course.widgets import make_kl_explorer

variant = partial(ppo.run_kl_variant, ref_policy, ref_policy, judge_fn, tok,
                  train_prompts, cfg.ppo, n_updates=cfg.budget.ppo_explore_updates,
                  seed=cfg.seed, value_init=judge, score_norm=stats)


def kl_run(b, e):  # each setting's run is kept in outputs/: a second click is free
    return load_or_build(
        cfg, "kl-variant", {"kl_coef": round(b, 6), "estimator": e,
                            "updates": cfg.budget.ppo_explore_updates},
        lambda: variant(kl_coef=b, kl_estimator=e),
        f"the PPO run at beta = {b:.3g} ({e})", notebook="ppo")


make_kl_explorer(kl_run, run.metrics, kl_coef=4 * cfg.ppo.kl_coef,
                 kl_estimator="k3")

# %% [markdown]
"""
## Check your understanding

1. Why must the log-probs of the policy and of the reference be computed at the
   sampling temperature, and what would happen to the KL if the reference used
   T = 1 while sampling used T = 0.7?
2. The k1 KL of one token can be negative. Why is the *sum* over an answer
   still a fair penalty on average, and why is k3 never negative?
3. Why is the score added at the last real token rather than spread over the
   answer? What does GAE then do with it?
4. At the first minibatch of every update the ratio is exactly 1. Why, and
   which statistic would reveal a bug if it were not?

✏️ **Try it**
- Set `missing_eos_penalty` to 0 and re-run 4.5: what happens to the EOS rate
  and the answer length?
- Make the rule reward count "!" instead of "you": how fast does PPO learn to
  shout, and what happens to the KL?
- Swap the value model for a zero-head copy of the policy
  (`rl.make_value_model(policy=policy)`) and compare `loss/value_avg`.
"""

# %% [markdown]
"""
## What this notebook showed

Each claim with its number, 95% interval, n and the verdict of the course's
one rule (`rlhf_lessons.measure.verdicts`); a claim about a training run also
needs its curve to have moved the right way.
"""

# %%
claims = [rule_claim, gain_claim,
          V.claim("a second seed also raises it (reference std)", d_b["mean"],
                  (d_b["ci_low"], d_b["ci_high"]), len(eval_b),
                  curve_moved=V.curve_moved(run_b.metrics["objective/scores"]))]
V.claims_table(claims)

# %%
from rlhf_lessons.course.artefacts import update_metrics

m = update_metrics(
    "04_ppo_with_the_judge", cfg,
    ref_score_mean=round(float(ref_mean), 4),
    ref_score_std=round(float(ref_std), 4),
    final_score_mean=round(float(final_mean), 4),
    score_gain_in_ref_std=round(float(gain), 3),
    score_gain_ci95=[round(d["ci_low"], 3), round(d["ci_high"], 3)],
    final_kl=round(float(final_kl), 3),
    final_train_kl=round(float(run.metrics["objective/kl"].iloc[-1]), 3),
    second_seed_gain=round(float(gain_b), 3),
    second_seed_gain_ci95=[round(d_b["ci_low"], 3), round(d_b["ci_high"], 3)],
    second_seed_final_kl=round(float(kl_b), 3),
    rule_reward_initial=round(float(rule_initial), 3),
    rule_reward_final=round(float(rule_final), 3),
    eval_prompt_subsets=eval_subsets, n_eval_prompts=len(eval_prompts),
    n_updates=len(run.metrics), claims=claims,
    wall_s=round(time.time() - t0, 1))
print({k: m[k] for k in ("score_gain_in_ref_std", "score_gain_ci95",
                         "final_kl", "eval_prompt_subsets", "wall_s")})
