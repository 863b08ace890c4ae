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
# 03 · The judge: a reward model

RLHF needs a judge that can score *any* answer, so that a policy can be trained
to please it (notebook 04). People only compared pairs of answers. This
notebook
turns those comparisons into a judge: a small GPT-2 with a one-number head.

**You will:**
- derive the Bradley–Terry loss from "A beats B with probability σ(r_A − r_B)"
  and write it in three lines of code;
- read the score at the **last real token**, and see which token a naive
  "last token that is not padding" rule reads instead;
- train a judge and read its curves;
- measure held-out accuracy with a confidence interval, beside the
  "longer wins" and "shorter wins" baselines;
- probe what the judge pays for with controlled rewrites of the same answer.

**Run time:** about 1.5 minutes on 2 CPU cores in the default preset (the full
judge is loaded, only a short demo trains live); seconds on a GPU. The
optional section at the end (why the trainer is quick) adds about 10 s.

**Instructor's path (50 minutes):** 3.1 Bradley-Terry by hand (10 min), 3.2
the last real token (5 min), 3.4 the live demo (5 min; live training about
20 s on a 2-core laptop), 3.5-3.7 the full judge against the length rules
(15 min), 3.8-3.9 what the judge gets wrong and pays for (10 min), the judge
widget if time is left. 3.3, 3.10 and the optional section are reading.

**Exercises** (✏️, two here): each stub cell raises `NotImplementedError`
until you fill it in, and the cell under it checks your code and names the
mistake it sees. "Restart & Run All" stops at the first unsolved one.
`make run` fills them from `notebooks/solutions/`, which also answers the
questions at the end.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

RETRAIN = False  # True: train the judge again instead of loading outputs/
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
rc = cfg.reward
print(f"preset {cfg.preset} | judge: {rc.backbone} backbone, batch "
      f"{rc.batch_size} pairs, lr {rc.lr:g}, {rc.epochs:g} epoch, "
      f"texts cut to {rc.max_len} tokens")

# %% [markdown]
r"""
## 3.1 From "A beats B" to a loss

The Bradley–Terry model gives each answer a score $r$ and says

$$P(\text{chosen} \succ \text{rejected}) = \sigma(r_c - r_r)
= \frac{1}{1 + e^{-(r_c - r_r)}}.$$

- Only the **difference** of scores matters: add 5 to every score and nothing
  changes.
- Maximising the likelihood of the human choices means minimising
  $-\log \sigma(r_c - r_r)$, averaged over pairs.
"""

# %% [markdown]
r"""
✏️ **Exercise 3.1 (implement).** Write `bt_loss(r_chosen, r_rejected)`: both
are `(B,)` scores; return the loss above, one number, the mean over pairs.
*Explain:* why must the loss be below $\log 2$ when $r_c > r_r$?
"""

# %% tags=["exercise", "ex-pairwise-loss"]
import torch
import torch.nn.functional as F


def bt_loss(r_chosen, r_rejected):
    raise NotImplementedError(
        "✏️ Exercise: write bt_loss, then re-run this cell and the check "
        "below")


# %%
from rlhf_lessons.course import checks

checks.check_pairwise_loss(bt_loss)

# %% [markdown]
r"""
<details><summary>Hint</summary>

**Idea:** the loss is small when the chosen score is well above the
rejected one. **Shape:** two `(B,)` scores in, one number out (a mean over
pairs). **Pitfall:** `torch.log(torch.sigmoid(x))` underflows to `-inf` for a
very negative x; PyTorch has a numerically safe log-sigmoid.
</details>
"""

# %%
r_c = torch.tensor([1.0, 0.0])
r_r = torch.tensor([0.0, 0.5])
print("loss on 2 pairs:", round(bt_loss(r_c, r_r).item(), 4))

# %% [markdown]
r"""
By hand: pair 1 has difference +1, so its loss is $\log(1+e^{-1}) = 0.3133$;
pair 2 has −0.5, so $\log(1+e^{0.5}) = 0.9741$. Their mean is the number above.

- A right ranking (difference > 0) costs less than $\log 2 = 0.693$; a wrong
  one costs more. A judge that guesses scores $\log 2$.
- The package's version adds two options TRL has: a **margin** $m$
  (`-log σ(r_c − r_r − m)`) and a **centring** term that keeps scores near 0.
"""

# %%
from rlhf_lessons.train import reward as R

print("package loss :", round(R.pairwise_loss(r_c, r_r).item(), 4))
print("with margin 1:", round(R.pairwise_loss(r_c, r_r, margin=1.0).item(), 4))
print("centred 0.01 :",
      round(R.pairwise_loss(r_c, r_r, center_coef=0.01).item(), 4))

# %% [markdown]
r"""
## 3.2 The model: a score at the last real token

The judge is the course's GPT-2 with its word-predicting head replaced by one
linear layer $w \in \mathbb{R}^{d}$ (drawn from $N(0, 1/\sqrt{d+1})$):

$$r(\text{prompt}, \text{answer}) = w^\top h_{\text{last}}.$$

- It reads `prompt + " " + answer + EOS`; in a causal model only the last
  position has seen the whole text, so that is where the score is read.
- Texts longer than `max_len` tokens are cut **from the left**: the two sides
  share their history and differ at the end, so the end must stay.
"""

# %%
from rlhf_lessons.course.artefacts import load_policy
from rlhf_lessons.core.models import n_params

backbone, tok = load_policy(cfg, stage=cfg.reward.backbone, device="cpu")
tok.padding_side = "right"
judge = R.build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed)
print(f"backbone: {cfg.reward.backbone}, {n_params(judge):,} parameters")
print("score head:", tuple(judge.score.weight.shape),
      "| pad id == eos id:", tok.pad_token_id == tok.eos_token_id)

# %% [markdown]
"""
**Where is the last real token?** Batches are padded, and in this course the
pad
token *is* the EOS token. So "the last token that is not pad" skips the real
EOS. Worse, with **left** padding the last position is always the end, and with
**right** padding it is padding. The attention mask is the only safe guide.
"""

# %% [markdown]
"""
✏️ **Exercise 3.2 (implement).** Write `last_real(mask)`: for an attention
mask `(B, T)` of 0s and 1s, return the `(B,)` long tensor of each row's last
position with a 1. *Extend:* does your version also work for left padding?
"""

# %% tags=["exercise", "ex-last-token-index"]
def last_real(mask):
    raise NotImplementedError(
        "✏️ Exercise: write last_real, then re-run this cell and the check "
        "below")


# %%
checks.check_last_token_index(last_real)

# %% [markdown]
"""
<details><summary>Hint</summary>

**Idea:** the answer is the largest position whose mask is 1.
**Shape:** `(B, T)` mask in, `(B,)` indices out. **Pitfall:** counting the
ones in a row gives the right index for right padding only; try your code on
a left-padded row before you run the check.
</details>
"""

# %%
eos = tok.eos_token_id
right = torch.tensor([[5, 6, 7, eos], [3, 9, eos, eos]])
right_mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
left = torch.tensor([[5, 6, 7, eos], [eos, 3, 9, eos]])
left_mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]])

naive = ((right != eos) * torch.arange(4)).argmax(1)
print("right padding:", last_real(right_mask).tolist(),
      "| left padding:", last_real(left_mask).tolist(),
      "| naive 'not pad':", naive.tolist())
same = torch.equal(R.last_token_index(right_mask), last_real(right_mask))
print("package agrees:", same)

# %% [markdown]
"""
The naive rule reads positions 2 and 1: the answer's last word, one token
before the EOS at 3 and 2. (Plain `transformers` pools there too.) The course
reads the EOS, the one position that has seen the whole text *and* the fact
that it ended. Whatever the rule, it must find the same token for either
padding side. Same text, either padding side, same score:
"""

# %%
with torch.no_grad():
    s_right = R.score(judge, right, right_mask)
    s_left = R.score(judge, left, left_mask)
print("right-padded scores:", s_right.numpy().round(4))
print("left-padded scores :", s_left.numpy().round(4))

# %% [markdown]
"""
## 3.3 The data the judge learns from

The training pairs are the course's **train** split of all four HH-RLHF
subsets;
the eval split is never trained on. Two policies, both counted:

- **identical pairs** (both sides the same text) carry no signal: dropped from
  training, and kept in evaluation as ties, which count as **wrong** (as TRL
  does);
- **empty answers**: Anthropic's files hold a few pairs where one side is
  empty. They are **kept**: a rater really chose between an answer and silence.
  (For your own file, an empty answer is refused unless you allow it.)
"""

# %%
from rlhf_lessons.course.artefacts import hh_pairs

train_pairs = hh_pairs(cfg, tok, "train")
eval_pairs = hh_pairs(cfg, tok, "eval")
print("train:", train_pairs.summary())
print("eval :", eval_pairs.summary())

# %% [markdown]
"""
## 3.4 Training, live (a short demo)

The trainer sorts pairs by length into batches (less padding), runs chosen and
rejected through the model in **one** forward pass, clips the gradient norm at
`max_grad_norm`, and decays the learning rate linearly to 0. Here it runs
for only `cfg.budget.judge_demo_steps` steps, then is scored on held-out
pairs drawn across the four subsets (seeded).
"""

# %%
import dataclasses

import pandas as pd

from rlhf_lessons.measure import evaluate as E
from rlhf_lessons.core.data import stratified_sample

steps = cfg.budget.judge_demo_steps
demo_cfg = dataclasses.replace(cfg.reward, max_steps=steps, eval_every=steps)
pick = stratified_sample(eval_pairs.subset, 4 * cfg.reward.batch_size,
                         cfg.seed)
demo_eval = eval_pairs.select(pick)
print("held-out pairs per subset:",
      pd.Series(demo_eval.subset).value_counts().sort_index().to_dict())
demo_metrics = R.train_reward_model(
    judge, train_pairs, demo_cfg, device, seed=cfg.seed,
    eval_pairs=demo_eval, pad_id=tok.pad_token_id).metrics
train_rows = demo_metrics.dropna(subset=["loss"])  # the eval row has none
train_rows[["step", "loss", "accuracy", "margin"]].round(3).tail(3)

# %% [markdown]
r"""
The logged keys are TRL's: `loss`, `accuracy`, `margin` (mean $r_c - r_r$),
the mean, min and max reward. Each step sees one batch of
`cfg.reward.batch_size` pairs, so the train accuracy jumps by whole pairs.
How far did these few steps move the judge?
"""

# %%
from rlhf_lessons.course import plots

axes = plots.plot_metrics(demo_metrics, ["loss", "accuracy"], smooth=5,
                          labels={"loss": plots.PAIR_LOSS})
axes[0].axhline(0.693, color=plots.REFERENCE_COLOR, ls="--", lw=1)
axes[1].set_ylim(0, 1)
axes[1].axhline(0.5, color=plots.REFERENCE_COLOR, ls="--", lw=1)
n_demo = len(demo_eval)
acc = float(demo_metrics["eval_accuracy"].dropna().iloc[-1])
lo_d, hi_d = E.wilson_ci(round(acc * n_demo), n_demo)
print(f"held-out accuracy after {steps} steps: {acc:.3f} (95% CI "
      f"{lo_d:.3f}-{hi_d:.3f}, n = {n_demo}); mean loss of the last 5 steps "
      f"{demo_metrics['loss'].tail(5).mean():.3f} vs log 2 = 0.693")
from rlhf_lessons.measure import verdicts as V

# no curve gate: the claim is the held-out accuracy itself, measured once, against
# the 0.5 an untrained head scores (12 one-batch training losses are too noisy to say)
demo_claim = V.claim("the demo judge beats a coin (held-out accuracy)", acc,
                     (lo_d, hi_d), n_demo, null=0.5)
print("better than a coin flip:", demo_claim["verdict"])

# %% [markdown]
"""
## 3.5 The full judge

A full epoch takes several minutes on a CPU, so the course ships a judge
trained by `python scripts/ship.py judge` with these same settings. The
package loads it (or the one you made earlier, or trains one if the settings
changed) and says which, in one line. Here are its own training curves:
"""

# %%
from rlhf_lessons.course.artefacts import (
    judge_pair_scores,
    load_judge,
    load_training_metrics,
)

judge, tok, card = load_judge(cfg, device)
full_metrics = load_training_metrics(cfg)
print({k: card.get(k) for k in ("backbone", "steps", "train_wall_s",
                                 "train_pairs")})
if full_metrics is not None:
    plots.plot_metrics(full_metrics, ["loss", "accuracy"], smooth=25,
                       labels={"loss": plots.PAIR_LOSS})

# %% [markdown]
"""
## 3.6 Held-out accuracy, beside the length rules

Accuracy alone means little. Two fixed rules need no model at all:
**longer wins** and **shorter wins**. The **length-only judge** picks, for
each subset, whichever rule wins more *train* pairs, then is scored on eval.
The judge must beat it to have learned more than length.

The 95% interval is Wilson's; with about 850 eval pairs it is about ±3 points.
"""

# %%
# power before scoring: the smallest accuracy these pairs can tell from a coin
print(V.power_line("held-out accuracy", len(eval_pairs),
                   V.min_detectable_rate(0.5, len(eval_pairs), one_sample=True)))
# the judge's scores of every eval pair, kept in outputs/ (05 reads them too)
scores = judge_pair_scores(cfg, judge, tok, eval_pairs, device)
ev = E.judge_accuracy(judge, eval_pairs, scores=scores)
directions = E.length_judge_directions(train_pairs)
table = E.accuracy_table(eval_pairs, ev["correct"], directions)
lo, hi = ev["ci95"]
print(f"judge: {ev['accuracy']:.3f} (95% CI {lo:.3f}-{hi:.3f}) | "
      f"length-only judge: {table.loc['overall', 'length_judge']:.3f}")
table.round(3)

# %%
length_acc = float(table.loc["overall", "length_judge"])
beats_length = V.claim("the judge beats the length-only judge (accuracy)",
                       ev["accuracy"], ev["ci95"], len(eval_pairs),
                       null=length_acc)
print(f"judge {ev['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] against the "
      f"length-only judge's {length_acc:.3f}: {beats_length['verdict']}")

# %% [markdown]
"""
How far apart are chosen and rejected scores? If the judge were perfect the
two histograms would not overlap at all.
"""

# %%
plots.plot_score_histograms(ev["r_chosen"], ev["r_rejected"]);

# %% [markdown]
"""
## 3.7 Helpful versus harmless

Bai et al. (2022) saw a tension: the **helpful** subsets reward doing what was
asked, the **harmless** subset rewards declining harmful requests. One judge
trained on both has to split the difference, and most of the data is helpful.
"""

# %%
import numpy as np
import pandas as pd

subs = pd.Series(train_pairs.subset)
helpful_share = subs.str.startswith("helpful").mean()
print(f"train pairs from helpful subsets: {helpful_share:.1%}")
print("length rule chosen on train, per subset:", directions)
table[["judge", "ci_low", "ci_high", "length_judge"]].round(3)

# %%
harm = table.loc["harmless-base"] if "harmless-base" in table.index else None
helpful = table.drop(["harmless-base", "overall"], errors="ignore")
if harm is not None:
    print(f"harmless-base: judge {harm['judge']:.3f} vs "
          f"'shorter wins' {harm['shorter_wins']:.3f}")
print(f"helpful subsets (mean): judge {helpful['judge'].mean():.3f} vs "
      f"'longer wins' {helpful['longer_wins'].mean():.3f}")

# %% [markdown]
"""
Read the two lines above:

- The length directions printed above were chosen on train pairs. Check them:
  on harmless-base, where the better answer is often a short refusal, is it
  "shorter"? Which helpful subsets reward "longer", and does any not?
- A judge that learned "longer and more forthcoming is better" from the
  majority of its data carries that bias into harmless-base. If the
  harmless-base accuracy printed above is near or below 0.5 while the helpful
  ones are above, that is this tension, not a bug.
"""

# %% [markdown]
"""
## 3.8 The pairs the judge gets most wrong

These are the eval pairs where the judge most prefers the **rejected** answer.
Reading them tells you more than any number.

*Content note:* harmless-base pairs are red-team conversations, some of them
offensive. The table shows helpful-* pairs; set `SHOW_ALL = True` to rank
every eval pair.
"""

# %%
from rlhf_lessons.course.widgets import safe_pairs

SHOW_ALL = False  # True: include harmless-base (red-team) pairs
pd.set_option("display.max_colwidth", 160)
wrong = E.most_wrong(eval_pairs, ev, k=len(eval_pairs))
safe_pairs(wrong, SHOW_ALL).head(5).reset_index(drop=True)

# %% [markdown]
"""
## 3.9 What does the judge reward?

A controlled rewrite changes **one** surface feature of the same answer and
keeps everything else. If the score moves, the judge pays for that feature.
We take `cfg.budget.judge_probe_answers` chosen eval answers, drawn across
the four subsets (seeded), and rewrite each one five
ways (`rewrites.REWRITES`); each effect is a paired difference, rewrite minus
the original answer, on the answers a rewrite changes.
"""

# %%
from rlhf_lessons.measure import rewrites

example = "Boil the egg for nine minutes. Then cool it in cold water."
for name, text in rewrites.rewrite_all(example).items():
    print(f"{name:>10}: {text}")

# %%
from rlhf_lessons.course.artefacts import (
    judge_reward_fn,
    load_or_build,
    weights_digest,
)

judge_fn = judge_reward_fn(judge, tok, cfg.reward.max_len, device)
idx = stratified_sample(eval_pairs.subset, cfg.budget.judge_probe_answers,
                        cfg.seed)
probe_subsets = (pd.Series(eval_pairs.subset).iloc[idx].value_counts()
                 .sort_index().to_dict())
print("answers per subset:", probe_subsets)
# six rewrites of each answer, scored by the judge: kept in outputs/, keyed
# by the judge's exact weights and the answers
probe = load_or_build(
    cfg, "judge-effects", {"weights": weights_digest(judge),
                           "rows": [int(i) for i in idx], "n_boot": 200},
    lambda: E.judge_effects(judge_fn, [eval_pairs.prompt[i] for i in idx],
                            [eval_pairs.chosen[i] for i in idx], n_boot=200,
                            seed=cfg.seed),
    f"the judge's reactions to {len(idx)} rewritten answers", notebook="judge")
probe[["n", "mean", "ci_low", "ci_high", "share_up", "mean_dwords"]].round(3)

# %% [markdown]
"""
- `mean` > 0 means the rewrite scores higher on average (`ci_low`-`ci_high`:
  its 95% bootstrap interval); `share_up` is how often. A Δ far from 0 on a
  rewrite that adds no facts (hedging, filler) is a **surface preference**:
  a policy could exploit it; notebook 05 asks whether PPO does.
- And how much does the score follow plain length, on the eval answers?
"""

# %%
scores = np.concatenate([ev["r_chosen"], ev["r_rejected"]])
lengths = np.concatenate([eval_pairs.len_chosen, eval_pairs.len_rejected])
corr = np.corrcoef(scores, np.log1p(lengths))[0, 1]
print(f"correlation of score with log(answer length): {corr:+.3f}")

# %% [markdown]
"""
## 3.10 Normalising the score for PPO

PPO works best when the judge's score has mean 0 and std 1 **on the answers
the starting policy gives**. So we sample answers from the reference (SFT)
policy to PPO's prompts (train split, single-turn, a stratified seeded
sample), score them, and keep their mean and std. Notebook 04 (section 4.2)
makes exactly this call, with the same prompts and seed, and uses the result.
"""

# %%
from rlhf_lessons.train.prompts import ppo_prompt_table
from rlhf_lessons.measure.evaluate import subset_counts
from rlhf_lessons.train.rollout import normalise

policy, ptok = load_policy(cfg, stage="sft", device=device)
ref_table = ppo_prompt_table(cfg, "train", ptok, n=cfg.budget.ref_prompts)
ref_answers = E.sample_and_score(policy, judge_fn, ptok,
                                 ref_table["prompt"].tolist(), cfg.ppo,
                                 seed=cfg.seed)
norm = E.score_stats(ref_answers.score)
z = normalise(ref_answers.score.to_numpy(), norm)
print("prompts per subset:", subset_counts(ref_table["subset"]))
print(f"judge on {len(ref_answers)} reference answers: mean {norm[0]:.3f}, "
      f"std {norm[1]:.3f} | normalised: mean {z.mean():.2f}, std "
      f"{z.std():.2f}")

# %% [markdown]
r"""
### Explore: be the judge's opponent

Type a prompt and two answers. The widget shows both scores and
$P(\text{A better}) = \sigma(r_A - r_B)$. Try a hedge, a refusal, a longer
version of the same answer.
"""

# %%
from rlhf_lessons.course.widgets import make_judge_widget

make_judge_widget(judge, tok, cfg.reward.max_len, device)

# %% [markdown]
"""
## Check your understanding

1. Why does adding the same constant to every score leave the loss unchanged?
2. With pad == eos and right padding, which token does "the last token that is
   not pad" read, and what has that position not seen?
3. The judge's accuracy and the length-only judge's were printed in 3.6. If
   their intervals overlap, what can and can't you conclude?
4. Why might a judge trained mostly on helpful pairs score below 0.5 on
   harmless-base?

✏️ **Try it**
- Give the demo run a margin: add `margin=1.0` to the
  `dataclasses.replace(cfg.reward, ...)` of 3.4 (it sets
  `RewardConfig.margin`, which the trainer passes to `R.pairwise_loss`),
  rebuild the judge with the cell of 3.2, re-run 3.4 and compare the curve.
- In the widget, write the same answer twice, once with "I'm not sure, but"
  in front. Which scores higher, and does 3.9 predict it?
- Train the judge from the SFT backbone instead
  (`python scripts/ship.py judge --backbone sft --no-ship`) and compare 3.6.
- Tune the judge without fooling yourself: `python scripts/judge_sweep.py`
  compares learning rates and epochs on a validation split carved from the
  *train* pairs. Why would picking the setting with the best 3.6 number
  overstate how good that judge is?
"""

# %% [markdown]
"""
## Optional: why the trainer is quick

*An engineering tangent: skip it in a lecture.* The judge reads one position
per text, the last real token. In a causal model every layer needs the keys
and values of *all* earlier positions, but the last layer's query, attention
and MLP are needed at that one position only. The trainer's forward
(`lean_gpt2.last_token_hidden`) computes just that. Same numbers, less work:
"""

# %%
from rlhf_lessons.core import lean_gpt2
from rlhf_lessons.core.utils import Timer

seqs = train_pairs.chosen_ids[: cfg.reward.batch_size]
L = max(len(s) for s in seqs)
ids = torch.tensor([s + [tok.pad_token_id] * (L - len(s)) for s in seqs],
                   device=device)
last = torch.tensor([len(s) - 1 for s in seqs], device=device)
rows = torch.arange(len(seqs), device=device)

def full_forward():  # every position through every layer, then pick `last`
    emb = judge.transformer.wte(ids)
    return judge.transformer(inputs_embeds=emb).last_hidden_state[rows, last]

def lean_forward():
    return lean_gpt2.last_token_hidden(judge, ids, last)

for name, fn in (("full", full_forward), ("lean", lean_forward)):
    fn().sum().backward()  # warm-up
    with Timer() as t:
        for _ in range(3):
            fn().sum().backward()
    print(f"{name} forward + backward: {1000 * t.seconds / 3:6.1f} ms")
judge.zero_grad()
with torch.no_grad():
    gap = (full_forward() - lean_forward()).abs().max().item()
print(f"largest difference in the hidden state: {gap:.1e}")

# %% [markdown]
"""
Predict the gain before you read it: the final block is one of
`cfg.model.n_layer` blocks and the lean forward skips most of *its* work, so
at most about `n_layer / (n_layer - 1)` times faster (the final block's keys
and values, the embeddings and the rest still cost the same). The fewer the
layers, the bigger the gain; a 12-layer `gpt2` gains little.
"""

# %% [markdown]
"""
## What this notebook showed

Each claim with its number, 95% interval, n and the verdict the course's one
rule gives it (`rlhf_lessons.measure.verdicts`: "holds" needs the interval on
the claim's side of the null and, for a claim about training, a curve that
moved).
"""

# %%
claims = [demo_claim,
          V.claim("the full judge beats a coin (held-out accuracy)",
                  ev["accuracy"], ev["ci95"], len(eval_pairs), null=0.5),
          beats_length]
for name, row in table.drop("overall").iterrows():
    claims.append(V.claim(f"{name}: the judge beats a coin", row["judge"],
                          (row["ci_low"], row["ci_high"]), int(row["n"]),
                          null=0.5))
V.claims_table(claims)

# %%
from rlhf_lessons.course.artefacts import update_metrics

by = table.drop("overall")
metrics = update_metrics(
    "03_reward_model_the_judge", cfg,
    wall_s=round(time.time() - t0, 2),
    eval_accuracy=round(float(ev["accuracy"]), 4),
    eval_accuracy_ci95=[round(float(x), 4) for x in ev["ci95"]],
    length_rule_accuracy=round(float(table.loc["overall", "length_judge"]), 4),
    eval_accuracy_by_subset=by["judge"].round(4).to_dict(),
    eval_accuracy_ci95_by_subset={
        s: [round(float(r["ci_low"]), 4), round(float(r["ci_high"]), 4)]
        for s, r in by.iterrows()},
    baseline_longer_by_subset=by["longer_wins"].round(4).to_dict(),
    baseline_shorter_by_subset=by["shorter_wins"].round(4).to_dict(),
    length_judge_directions=directions,
    n_eval_pairs=len(eval_pairs),
    n_identical_dropped=train_pairs.n_identical_dropped,
    judge_backbone=card.get("backbone"),
    score_length_corr=round(float(corr), 4),
    ref_score_mean=round(float(norm[0]), 4),
    ref_score_std=round(float(norm[1]), 4),
    probe_answer_subsets=probe_subsets,
    demo_eval_accuracy=round(acc, 4),
    claims=claims,
)
print({k: metrics[k] for k in ("eval_accuracy", "eval_accuracy_ci95",
                               "length_rule_accuracy", "wall_s")})
