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
# 06 · What optimisation does with it

Notebook 05 asked what raters and judges pay for. This one asks what
*optimisation* does with a small preference: does picking the judge's
favourite, or training against it, turn a small tilt in the scores into a
large tilt in the outputs? Every section measures, and ends in a verdict
computed from its own numbers, whichever way they go.

**You will:**
- measure how often best-of-N picks an answer with a confident or flattering
  opener, on real human-written answers;
- derive the tilt of KL-regularised RL in one line, and plot it for the δ the
  judge actually pays;
- reproduce Gao et al.'s best-of-n curve (proxy against gold);
- run a *simulation* of biased raters: a judge per bias, then PPO against the
  most biased one;
- check calibration ("sure when wrong") of the pretrained, SFT and PPO models,
  and of the judge; and split a score gain into length and the rest.

**Run time:** the target is at most 6 minutes on a 2-core CPU (default
preset; the notebook prints its wall time at the end; a re-run loads its
finished results and takes about a minute); seconds in the fast preset, where
the models are tiny and random, so its numbers mean nothing.

**Instructor's path (50 minutes):** 6.1 (5 min), 6.2 and 6.3 (15 min, the
core idea), 6.5 (15 min; its PPO trains live in about a minute on a 2-core
laptop), 6.6 (10 min), 6.7 and the questions (5 min). 6.4 can be set as
reading.

**Exercises** (✏️, two here): each stub cell raises `NotImplementedError`
until you fill it in; the cell under it checks your code and names the
mistake it sees. `make run` fills them from `notebooks/solutions/`.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

RETRAIN = False  # True: recompute what outputs/ holds (samples, runs)
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset, "| model:", cfg.model.name)

# %% [markdown]
"""
## 6.1 The cast: policy, judges, prompts

- the **policy** is the SFT model of notebook 02; it is also the
  **reference** π_ref that every KL is measured against;
- the **judge** is the shipped reward model of notebook 03 (held-out accuracy
  about 0.59); in 6.4 it plays the **gold** judge;
- every measurement uses **held-out** prompts and answers, drawn across the
  four HH-RLHF subsets with a seed (never the first rows of a file).

The budgets of this notebook are in one config for the preset:
"""

# %%
import dataclasses

import pandas as pd

from rlhf_lessons.core.config import OptimisationConfig

oc = OptimisationConfig.for_preset(cfg)
# one row per budget (a table, not the dataclass on one line)
pd.json_normalize(dataclasses.asdict(oc)).T.rename(columns={0: "value"})

# %%
from rlhf_lessons.course.artefacts import (
    judge_reward_fn,
    load_judge,
    load_policy,
)

ref_policy, tok = load_policy(cfg, "sft", device)
gold_model, gold_tok, gold_card = load_judge(cfg, device)
gold = judge_reward_fn(gold_model, gold_tok, cfg.reward.max_len, device)
print("judge held-out accuracy:", gold_card.get("eval_accuracy", "?"))

# %%
import numpy as np
import pandas as pd

from rlhf_lessons.core.data import load_all_hh
from rlhf_lessons.core.data import stratified_sample

train_ds = load_all_hh("train", cfg.source, cfg.max_rows_per_subset)
eval_ds = load_all_hh("eval", cfg.source, cfg.max_rows_per_subset)
ev_sub = np.array(eval_ds["subset"])
single = np.flatnonzero([p.count("Human:") == 1 for p in eval_ds["prompt"]])


def draw(n, seed, rows=None):
    """n eval row ids, stratified by subset and seeded (from ``rows``)."""
    rows = np.arange(len(eval_ds)) if rows is None else rows
    return rows[stratified_sample(ev_sub[rows], n, seed=seed)]


def per_subset(ids):
    return pd.Series(ev_sub[ids]).value_counts().sort_index().to_dict()


# %% [markdown]
"""
The reference's answers set the judge's unit: its scores on SFT answers to
train prompts have a standard deviation, and every δ below is divided by it
(the same normalisation PPO uses for its reward).
"""

# %%
from rlhf_lessons.measure.evaluate import sample_and_score, score_stats

ppo_cfg = oc.ppo_config(cfg.ppo, oc.ppo_lr)
tr = np.random.default_rng(cfg.seed).permutation(len(train_ds))
train_prompts = [train_ds[int(i)]["prompt"] for i in tr[:oc.n_train_prompts]]
norm_df = sample_and_score(ref_policy, gold, tok,
                           train_prompts[:oc.n_norm_prompts], ppo_cfg,
                           seed=cfg.seed)
gold_stats = score_stats(norm_df["score"])
print(f"judge on {len(norm_df)} reference answers: mean "
      f"{gold_stats[0]:.3f}, std {gold_stats[1]:.3f}")

# %% [markdown]
"""
**What does the judge pay for an opener?** A controlled rewrite adds one
opener to the same held-out answer ("Definitely." or "Great question! You
clearly know a lot about this."); δ is the paired score difference, in raw
units and in units of the reference std.
"""

# %%
from rlhf_lessons.measure.evaluate import judge_effects

eff_ids = draw(oc.n_effect_answers, cfg.seed)
eff_ids = [i for i in eff_ids if eval_ds[int(i)]["chosen_response"].strip()]
print("answers per subset:", per_subset(eff_ids))
OPENERS = {"confident": ("confident", "original"),
           "flattering": ("flattering", "original")}
effects = judge_effects(gold, [eval_ds[int(i)]["prompt"] for i in eff_ids],
                        [eval_ds[int(i)]["chosen_response"] for i in eff_ids],
                        effects=OPENERS, n_boot=oc.n_boot, seed=cfg.seed)
for c in ("mean", "ci_low", "ci_high"):
    effects[c + " (reference std)"] = effects[c] / gold_stats[1]
effects.round(3)

# %% [markdown]
"""
## 6.2 How often does best-of-N pick the feature?

Best-of-N is the simplest optimiser: draw N answers, keep the one the judge
scores highest. For each held-out prompt we build a **pool** of real
human-written answers: the prompt's own two HH answers plus HH answers to
*other* prompts of the same subset (so most candidates are off-topic; the
judge must also sort relevance). Each candidate independently gets the
opener with a seeded coin of probability p0, so at N = 1 the share with the
feature is p0. Then the judge picks the best of N.

The share for every N comes **exactly** from one pool: sort the candidates
by score; the one of ascending rank i is the best of a random N-subset with
probability C(i−1, N−1) / C(K, N). No resampling. The interval resamples
prompts.
"""

# %%
from rlhf_lessons.course.artefacts import load_or_build
from rlhf_lessons.measure.rewrites import rewrite

pool_ids = draw(oc.n_pool_prompts, cfg.seed + 1, rows=single)
print("pool prompts per subset:", per_subset(pool_ids))
rng = np.random.default_rng(cfg.seed)
pools = []
for i in pool_ids:
    r = eval_ds[int(i)]
    others = np.flatnonzero((ev_sub == ev_sub[i]) & (np.arange(len(ev_sub))
                                                    != i))
    pick = rng.choice(others, oc.pool_size - 2, replace=False)
    cands = [r["chosen_response"], r["rejected_response"],
             *[eval_ds[int(j)]["chosen_response"] for j in pick]]
    pools.append((r["prompt"], [c.strip() or "OK." for c in cands]))
print(f"{len(pools)} pools of {oc.pool_size} answers")


# %%
def score_pools():
    out = {}
    for kind in ("original", "confident", "flattering"):
        ps = [p for p, c in pools for _ in c]
        ans = [rewrite(a, kind) for _, c in pools for a in c]
        out[kind] = np.asarray(gold(ps, ans)).reshape(len(pools), -1)
    return out


pool_scores = load_or_build(cfg, "pool-scores",
                            {"ids": pool_ids.tolist(), "k": oc.pool_size},
                            score_pools, "pool scores (6.2)")

# %%
from rlhf_lessons.measure.evaluate import wilson_ci
from rlhf_lessons.measure.selection import (bootstrap_over_pools,
                                    feature_share_best_of_n)

ns = [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= oc.pool_size]
bon, pairwise = {}, {}
for feat in ("confident", "flattering"):
    per_pool = feature_share_best_of_n(pool_scores["original"],
                                       pool_scores[feat], oc.p0, ns,
                                       seed=cfg.seed)
    bon[feat] = bootstrap_over_pools(per_pool, oc.n_boot, seed=cfg.seed)
    up = pool_scores[feat] > pool_scores["original"]
    pairwise[feat] = (up.mean(), *wilson_ci(int(up.sum()), up.size), up.size)
pd.DataFrame({f: bon[f]["mean"] for f in bon}, index=ns).rename_axis("N")

# %% [markdown]
"""
(The coin is drawn 200 times, seeded, and the exact shares averaged, so the
coins add no noise; the interval comes from the prompts.) Beside it, how
often the judge prefers the opener version of the *same* answer, and how
large δ is in the judge's reference std (the course's one unit for judge
effects, defined in notebook 04: the spread of its scores over the
reference policy's answers):
"""

# %%
for f, (rate, lo, hi, n) in pairwise.items():
    dd = (pool_scores[f] - pool_scores["original"]).mean()
    print(f"{f:10}: the judge prefers the opener version in {rate:.1%} "
          f"(95% CI {lo:.1%}-{hi:.1%}, n={n} answers); mean δ "
          f"{dd / gold_stats[1]:+.3f} reference std")

# %%
from rlhf_lessons.course.plots import plot_bon_selection

ax = plot_bon_selection(ns, bon)
ax.axhline(oc.p0, color="grey", ls="--", lw=1);

# %% [markdown]
"""
What the judge picked from one pool of a helpful-* prompt, at the largest N
(a content note: HH-RLHF has red-team prompts; set `SHOW_ALL = True` to let
the example come from any subset):
"""

# %%
SHOW_ALL = False
ok = [k for k, i in enumerate(pool_ids)
      if SHOW_ALL or ev_sub[i].startswith("helpful")] or [0]
k = ok[0]
coin = np.random.default_rng(cfg.seed).random(oc.pool_size) < oc.p0
s = np.where(coin, pool_scores["confident"][k], pool_scores["original"][k])
best = int(np.argmax(s))
a = pools[k][1][best]
print("prompt:", pools[k][0].strip()[-200:])
print(f"pick of {oc.pool_size} (score {s[best]:.2f}; own answer: "
      f"{'yes' if best < 2 else 'no'}):",
      " ".join((rewrite(a, "confident") if coin[best] else a).split())[:300])

# %% [markdown]
"""
The verdict, per feature, on the claim "selection raises the share above p0"
at the largest N (the course's one rule, `rlhf_lessons.measure.verdicts`):
"""


# %%
from rlhf_lessons.measure import verdicts as V


def bon_claim(f):
    r, top = bon[f], len(ns) - 1
    return V.claim(f"best-of-{ns[top]} raises the {f} share above p0",
                   r["mean"][top], (r["ci_low"][top], r["ci_high"][top]),
                   r["n_pools"], null=oc.p0)


bon_claims = {f: bon_claim(f) for f in bon}
for f, c in bon_claims.items():
    print(f"{f:10}: share {c['number']:.2f} [{c['ci'][0]:.2f}, {c['ci'][1]:.2f}] "
          f"vs p0 = {oc.p0} (n = {c['n']} prompts) -> {c['verdict']}")

# %% [markdown]
r"""
## 6.3 What does the tilt formula predict?

KL-regularised RL maximises $E[r] - \beta\,\mathrm{KL}(\pi\|\pi_{ref})$. Its
optimum has a closed form:

$$\pi^*(y) \propto \pi_{ref}(y)\,e^{r(y)/\beta}.$$

Take a feature that adds δ to the score and can be attached to any answer
(an opener). Every answer with it is up-weighted by $e^{\delta/\beta}$
relative to its twin without it, so its share goes from $p_0$ to

$$p^* = \frac{p_0 e^{\delta/\beta}}{p_0 e^{\delta/\beta} + 1 - p_0}.$$

The optimiser takes every free point the judge offers; only β limits it.
Best-of-N over a fixed pool moves the share only as far as the pool allows.
Below: $p^*$ against β for the confident opener's measured δ (reference-std
units, with its 95% CI as a band), and p0 = the coin of 6.2.
"""

# %%
from rlhf_lessons.course.plots import plot_tilt
from rlhf_lessons.measure.selection import tilt_share

betas = np.logspace(-2, 1, 60)
d = effects.loc["confident"]
band = (tilt_share(oc.p0, d["ci_low (reference std)"], betas),
        tilt_share(oc.p0, d["ci_high (reference std)"], betas))
plot_tilt(betas, tilt_share(oc.p0, d["mean (reference std)"], betas), band, oc.p0)
b04 = cfg.ppo.kl_coef
print(f"δ = {d['mean (reference std)']:+.3f} reference std (n={int(d['n'])}); at β = {b04} "
      f"(notebook 04) the optimum holds "
      f"{float(tilt_share(oc.p0, d['mean (reference std)'], b04)):.2f} of answers")

# %% [markdown]
r"""
The PPO run of 6.5 is checked against this formula for its own marker and
judge (`tilt_prediction` in `metrics.json`). PPO with a KL penalty only
*approaches* this optimum, and only if its updates move the share at all:
6.5 measures whether they did.

## 6.4 Does the gold score peak under best-of-N?

Gao et al. (2022) picked the best of n samples with a **proxy** judge and
scored the pick with a **gold** judge. Against $d = \sqrt{KL}$, the proxy
rose steadily while the gold score rose, peaked and fell: they fitted
$R(d) = d(\alpha - \beta d)$, with its peak at $d^* = \alpha / 2\beta$.

Our version: the shipped judge is the gold; the proxy is the notebook-03
recipe on a small slice of train pairs, labelled by the gold judge.
"""

# %%
from rlhf_lessons.course.artefacts import load_proxy_judge

proxy_model, proxy_tok, proxy_card = load_proxy_judge(
    cfg, oc, device, gold_model=gold_model)
proxy = judge_reward_fn(proxy_model, proxy_tok, cfg.reward.max_len, device)
print(f"proxy: {proxy_card['train_pairs']} train pairs, "
      f"{proxy_card['n_flipped_by_gold']} labels flipped by the gold judge")

# %% [markdown]
r"""
The distance of best-of-n from the policy is usually quoted as

$$\mathrm{KL}_{bon} = \log n - \frac{n-1}{n}$$

(Stiennon et al. 2020). Beirami et al. (2024) proved it is only an **upper
bound**, loose when samples repeat; our x axis is that bound.

✏️ **Exercise 6.4 (implement).** Write `bon_kl(n)`: that KL in nats.
"""


# %% tags=["exercise", "ex-bon-kl"]
def bon_kl(n):
    raise NotImplementedError(
        "✏️ Exercise: write bon_kl, then re-run this cell and the check below")


# %%
from rlhf_lessons.course import checks

checks.check_bon_kl(bon_kl)
print("KL bound at n = 16:", round(bon_kl(16), 3), "nats")

# %% [markdown]
r"""
<details><summary>Hint</summary>

**Idea:** the closed form of 6.2 (Stiennon et al.): a log term minus a
correction. **Check yourself:** n = 1 must give 0 (the best of one sample is
just a sample), and the value grows with n but slower than log n.
**Pitfall:** log base 2 gives bits, the course counts nats.
</details>

Now K samples per held-out prompt from the SFT policy, each scored by both
judges (each normalised on these reference samples), and the exact expected
score of the proxy's pick for every n ≤ K:
"""

# %%
bon_ids = draw(oc.n_bon_prompts, cfg.seed + 3, rows=single)
print("prompts per subset:", per_subset(bon_ids))
bon_prompts = [eval_ds[int(i)]["prompt"] for i in bon_ids]


def sample_pool():
    df = sample_and_score(ref_policy, None, tok,
                          [p for p in bon_prompts for _ in range(oc.bon_k)],
                          ppo_cfg, seed=cfg.seed + 3)
    df["gold"] = gold(list(df.prompt), list(df.answer))
    df["proxy"] = proxy(list(df.prompt), list(df.answer))
    return df


samples = load_or_build(cfg, "bon-samples",
                        {"ids": bon_ids.tolist(), "k": oc.bon_k},
                        sample_pool, "best-of-n samples (6.4)")
print(f"{len(samples)} samples, {oc.bon_k} per prompt")

# %%
from rlhf_lessons.measure.selection import best_of_n_expected, bon_kl_bound

z = {j: ((samples[j] - samples[j].mean()) / samples[j].std()).to_numpy()
     .reshape(len(bon_prompts), oc.bon_k) for j in ("gold", "proxy")}
bn = list(range(1, oc.bon_k + 1))
per = {j: np.stack([best_of_n_expected(p, v, bn) for p, v in
                    zip(z["proxy"], z[j])]) for j in ("gold", "proxy")}
curve = pd.DataFrame({"n": bn, "kl_bound": bon_kl_bound(bn),
                      "proxy": per["proxy"].mean(0),
                      "gold": per["gold"].mean(0)})
curve.iloc[[0, 1, 3, 7, -1]].round(3)

# %%
from rlhf_lessons.course.plots import plot_bon_curve
from rlhf_lessons.measure.selection import fit_gao_bon

fit = fit_gao_bon(np.sqrt(curve["kl_bound"][1:]), curve["gold"][1:])
plot_bon_curve(curve, fit)
gk = per["gold"][:, -1]
boots = np.random.default_rng(cfg.seed).choice(gk, (oc.n_boot, gk.size))
lo, hi = np.percentile(boots.mean(1), [2.5, 97.5])
print(f"fit: alpha {fit['alpha']:.3f}, beta {fit['beta']:.3f}, "
      f"d* = {fit['d_peak']:.2f}; gold at n={oc.bon_k}: {gk.mean():+.3f} "
      f"[{lo:+.3f}, {hi:+.3f}] (n={gk.size} prompts)")

# %%
d_max = float(np.sqrt(curve["kl_bound"].iloc[-1]))
if fit["beta"] > 0 and fit["d_peak"] < d_max and hi < curve["gold"].max():
    print(f"holds: gold peaks at d* = {fit['d_peak']:.2f} inside the range "
          f"(max d {d_max:.2f}) and the last point is clearly lower")
elif lo > 0:
    print(f"does not hold on our models up to n = {oc.bon_k}: gold still "
          f"rises with the proxy (peak of the fit {fit['d_peak']:.2f}, "
          f"range {d_max:.2f})")
else:
    print(f"cannot tell with n = {gk.size} prompts: gold at n={oc.bon_k} is "
          "not distinguishable from the reference")

# %% [markdown]
"""
## 6.5 Do biased raters make a biased policy?

**A simulation.** Real raters' biases are hard to measure (notebook 05), so
here we *make* one and follow it through. The raters follow the human label
of each HH-RLHF train pair, except that when exactly one answer opens with a
confidence marker they pick that answer with probability b, whatever it
says. The marked answer then wins 0.5 + b/2 of those pairs (markers are
assigned at random, so the human labels are indifferent to them).

Which marker? PPO can only amplify what the policy sometimes writes: an
opener it never produces (p0 = 0) stays at 0 under the tilt formula, however
large δ. So we measure how often the SFT policy opens with each confident
word, on the samples of 6.4, and take the most common:
"""

# %%
from rlhf_lessons.measure.biased_raters import add_marker, has_marker

cands = ["Sure.", "Yes.", "Definitely.", "Absolutely.", "Of course."]
opener_rate = {c: float(np.mean([has_marker(a, c) for a in samples.answer]))
               for c in cands}
MARKER = max(opener_rate, key=opener_rate.get)
print({c: round(r, 3) for c, r in opener_rate.items()},
      f"(n={len(samples)}) -> marker {MARKER!r}")

# %% [markdown]
"""
Each judge is fitted cheaply: the shipped judge's transformer stays frozen;
every (prompt, answer) is embedded once (its last-token state beside its mean
state); only a linear score head is fitted to each rater's labels with the
Bradley-Terry loss. A seeded half of the answers get the marker. (Pairs with
single-turn prompts only, to keep the embedding pass short.)
"""

# %%
from rlhf_lessons.measure.biased_raters import embed_answers

tr_sub = np.array(train_ds["subset"])
tr_single = np.flatnonzero([p.count("Human:") == 1
                            for p in train_ds["prompt"]])
rt_ids = tr_single[stratified_sample(tr_sub[tr_single], oc.rater_pairs,
                                     seed=cfg.seed)]
rv_ids = draw(oc.rater_eval_pairs, cfg.seed + 4, rows=single)
rng = np.random.default_rng(cfg.seed + 5)
mark = rng.random((len(rt_ids), 2)) < oc.marker_share
print("train pairs per subset:",
      pd.Series(tr_sub[rt_ids]).value_counts().sort_index().to_dict())


# %%
def embed_all():
    def emb(ps, ans):
        return embed_answers(gold_model, gold_tok, ps, ans,
                             cfg.reward.max_len, device)
    rows = [train_ds[int(i)] for i in rt_ids]
    side = ("chosen_response", "rejected_response")
    tr_x = [emb([r["prompt"] for r in rows],
                [add_marker(r[s], MARKER) if m[j] else r[s]
                 for r, m in zip(rows, mark)]) for j, s in enumerate(side)]
    ev_rows = [eval_ds[int(i)] for i in rv_ids]
    ev_x = [emb([r["prompt"] for r in ev_rows], [r[s] for r in ev_rows])
            for s in side]
    ps = [eval_ds[int(i)]["prompt"] for i in eff_ids]
    ans = [eval_ds[int(i)]["chosen_response"] for i in eff_ids]
    eff = [emb(ps, ans), emb(ps, [add_marker(a, MARKER) for a in ans])]
    # the normaliser: every k-th reference sample, so all prompts count
    ref = emb(list(samples.prompt[::ref_k]), list(samples.answer[::ref_k]))
    return {"train": tr_x, "eval": ev_x, "effect": eff, "ref": ref}


ref_k = max(1, len(samples) // 256)


E = load_or_build(cfg, "rater-embeddings",
                  {"rt": rt_ids.tolist(), "rv": rv_ids.tolist(),
                   "marker": MARKER, "share": oc.marker_share,
                   "eff": [int(i) for i in eff_ids], "ref_k": ref_k},
                  embed_all, "frozen embeddings (6.5)")

# %%
from rlhf_lessons.measure.biased_raters import (biased_labels, fit_linear_head,
                                        linear_scores)
from rlhf_lessons.measure.evaluate import mean_with_error


def ci3(ci):  # an interval for reading: (0.412, 0.538)
    return tuple(round(float(x), 3) for x in ci)


heads, rows = {}, []
for b in oc.rater_biases:
    lab = biased_labels(np.ones(len(rt_ids), bool), mark[:, 0], mark[:, 1],
                        b, np.random.default_rng(cfg.seed + 6))
    one = mark[:, 0] != mark[:, 1]
    won = np.where(mark[:, 0], lab, ~lab)[one].mean()
    h = heads[b] = fit_linear_head(E["train"][0]["x"], E["train"][1]["x"],
                                   lab)
    h["stats"] = score_stats(linear_scores(h, E["ref"]["x"]))
    rc, rr = (linear_scores(h, e["x"]) for e in E["eval"])
    acc = float((rc > rr).mean())
    dlt = (linear_scores(h, E["effect"][1]["x"])
           - linear_scores(h, E["effect"][0]["x"])) / h["stats"][1]
    st = mean_with_error(dlt, oc.n_boot, cfg.seed)
    n_ok = int((rc > rr).sum())
    rows.append({"b": b, "marked wins (labels)": won,
                 "n one-marked": one.sum(), "held-out acc": acc,
                 "acc ci95": ci3(wilson_ci(n_ok, len(rc))),
                 "judge_effect": st["mean"],
                 "effect ci95": ci3((st["ci_low"], st["ci_high"]))})
raters = pd.DataFrame(rows).set_index("b")
raters.round(3)

# %% [markdown]
"""
`judge_effect` is δ for the marker on held-out answers (n printed in the
effect cell of 6.1's answers), in units of that judge's std on reference
samples; the accuracy is on held-out human labels (n =
`rater_eval_pairs`).

**Before PPO runs: can this experiment decide?** The SFT policy's held-out
answers give p0, the marker's rate before; the tilt formula of 6.3 turns p0
and the most biased judge's δ into the rate at PPO's optimum (notebook 04's
β); and n answers per policy set the smallest rate we could tell from p0.
"""

# %%
ho_ids = draw(oc.n_eval_prompts, cfg.seed + 7, rows=single)
print("held-out prompts per subset:", per_subset(ho_ids))
ho_prompts = [eval_ds[int(i)]["prompt"] for i in ho_ids] * oc.eval_samples


def answers_of(pol):
    df = sample_and_score(pol, None, tok, ho_prompts, ppo_cfg,
                          seed=cfg.seed + 8, ref_policy=ref_policy)
    x = embed_answers(gold_model, gold_tok, list(df.prompt),
                      list(df.answer), cfg.reward.max_len, device)["x"]
    for b in oc.rater_biases:
        h = heads[b]
        df[f"judge b={b:g}"] = (linear_scores(h, x) - h["stats"][0]) \
            / h["stats"][1]
    df["marker"] = [has_marker(a, MARKER) for a in df.answer]
    df["words"] = [len(a.split()) for a in df.answer]
    return df


b_max = max(oc.rater_biases)
before = answers_of(ref_policy)
p0_m = float(before.marker.mean())
delta_m = raters.loc[b_max, "judge_effect"]
pred = float(tilt_share(p0_m, delta_m, cfg.ppo.kl_coef))
detectable = V.min_detectable_rate(p0_m, len(before))
print(f"p0 = {p0_m:.3f} ({int(before.marker.sum())} of {len(before)} answers); the "
      f"b = {b_max:g} judge pays δ = {delta_m:+.2f} reference std for the marker; "
      f"the tilt formula at β = {cfg.ppo.kl_coef} predicts {pred:.3f}")
print(f"power: with n = {len(before)} answers per policy the smallest rate this "
      f"experiment can tell from p0 is {detectable:.3f}")
print("-> sized to decide: the predicted rate lies beyond the noise" if pred >= detectable
      else "-> this n cannot see the predicted rate: raise eval_samples or b")

# %% [markdown]
"""
Now PPO against the **most biased** judge, at notebook 04's β:
"""

# %%
import copy

from rlhf_lessons.train import ppo
from rlhf_lessons.train import rollout as rl
from rlhf_lessons.course.artefacts import sweep_checkpoint
from rlhf_lessons.measure.biased_raters import linear_judge_fn

biased = linear_judge_fn(gold_model, gold_tok, heads[b_max],
                         cfg.reward.max_len, device)
policy = copy.deepcopy(ref_policy)
value_model = rl.make_value_model(reward_model=gold_model)
ck = sweep_checkpoint(cfg, oc, f"ppo-b{b_max:g}")
if not ck.exists():
    print(f"PPO: training now ({oc.ppo_updates} updates), saved to {ck}")
run = ppo.train_ppo(policy, ref_policy, value_model, biased, tok,
                    train_prompts, ppo_cfg, seed=cfg.seed,
                    n_updates=oc.ppo_updates, score_norm=heads[b_max]["stats"],
                    checkpoint=ck, desc=f"PPO vs the b={b_max:g} judge")
run.metrics[["step", "objective/scores", "objective/kl"]].round(3).tail(3)

# %% [markdown]
"""
The same held-out prompts after PPO, sampled with the same seed, scored by the
biased judge and by the unbiased (b = 0) judge, each in its own
reference-std units:
"""

# %%
after = answers_of(policy)
print(f"KL after PPO: {after.kl.mean():.2f} nats (n={len(after)})")

# %%
SHOW = 6
helpful = [i for i, p in enumerate(ho_prompts)
           if SHOW_ALL or ev_sub[ho_ids[i % len(ho_ids)]].startswith("help")]
pick = (helpful or list(range(len(ho_prompts))))[:SHOW]
pd.DataFrame({"prompt": [ho_prompts[i].strip()[-60:] for i in pick],
              "before": [before.answer[i][:90] for i in pick],
              "after": [after.answer[i][:90] for i in pick]})

# %%
res = []
for name, df in (("before", before), ("after", after)):
    k, n = int(df.marker.sum()), len(df)
    res.append({"policy": name, "marker rate": k / n,
                "ci95": wilson_ci(k, n), "n": n,
                "judge b=0": df["judge b=0"].mean(),
                f"judge b={b_max:g}": df[f"judge b={b_max:g}"].mean(),
                "words": df.words.mean()})
res = pd.DataFrame(res).set_index("policy")
res.round(3).assign(ci95=res.ci95.map(ci3))

# %%
lo_a, hi_a = res.loc["after", "ci95"]
d_mk = mean_with_error(after.marker.astype(float) - before.marker.astype(float),
                       oc.n_boot, cfg.seed)
ppo_moved = V.curve_moved(run.metrics["objective/scores"])
marker_claim = V.claim(f"PPO raises the marker's rate (b = {b_max:g} judge)",
                       d_mk["mean"], (d_mk["ci_low"], d_mk["ci_high"]),
                       len(after), curve_moved=ppo_moved,
                       n_needed=V.n_per_arm(p0_m, pred) if pred > p0_m else None,
                       predicted=pred - p0_m)
print(f"marker rate: {p0_m:.3f} before, {res.loc['after', 'marker rate']:.3f} "
      f"[{lo_a:.3f}, {hi_a:.3f}] after PPO ({oc.ppo_updates} updates), the tilt's "
      f"optimum {pred:.3f}; change {d_mk['mean']:+.3f} [{d_mk['ci_low']:+.3f}, "
      f"{d_mk['ci_high']:+.3f}]: {marker_claim['verdict']}")
d_own = mean_with_error(after[f"judge b={b_max:g}"] - before[f"judge b={b_max:g}"],
                        oc.n_boot, cfg.seed)
own_claim = V.claim(f"PPO raises its own (b = {b_max:g}) judge's score on held-out "
                    "prompts (reference std)", d_own["mean"],
                    (d_own["ci_low"], d_own["ci_high"]), len(after), curve_moved=ppo_moved)
print(f"its own judge, before -> after: {d_own['mean']:+.3f} [{d_own['ci_low']:+.3f}, "
      f"{d_own['ci_high']:+.3f}] reference std: {own_claim['verdict']}")
d_gold = mean_with_error(after["judge b=0"] - before["judge b=0"], oc.n_boot,
                         cfg.seed)
gold_claim = V.claim("PPO raises the unbiased (b = 0) judge's score "
                     "(reference std)", d_gold["mean"],
                     (d_gold["ci_low"], d_gold["ci_high"]), len(after))
print(f"the unbiased judge, before -> after: {res.loc['before', 'judge b=0']:+.3f}"
      f" -> {res.loc['after', 'judge b=0']:+.3f} reference std, difference "
      f"{d_gold['mean']:+.3f} [{d_gold['ci_low']:+.3f}, {d_gold['ci_high']:+.3f}]: "
      f"{gold_claim['verdict']}")
seen = p0_m * oc.rollout_batch * oc.ppo_updates
print(f"PPO's training answers: {oc.rollout_batch * oc.ppo_updates}, of which about "
      f"{seen:.0f} carry the marker at p0; words per answer {res.loc['before', 'words']:.1f}"
      f" -> {res.loc['after', 'words']:.1f}")

# %% [markdown]
"""
**Reading the verdict.** The tilt formula gives the *optimum* of the
KL-regularised objective; PPO gets there only through the answers it samples.
A marker on about one answer in sixty appears a handful of times in a short run
(the line above), so the gradient hardly sees it, while the judge also pays for
other things the policy writes on every answer. When the marker claim does not
hold but PPO still raised its own judge's score, PPO found that judge's reward
by another road: compare the words column before and after, and 6.7 on length.
The same experiment on a model that writes its sure-sounding form on most
answers is notebook 08's.
"""

# %% [markdown]
r"""
## 6.6 Is the policy sure when it is wrong?

A model is **calibrated** when it is right as often as it is sure. For a
language model: at each answer token of a held-out transcript, its
confidence is the largest next-token probability, and it is right when that
token is the true one. The **expected calibration error** bins the
confidences into equal-width bins on [0, 1]:

$$\mathrm{ECE} = \sum_b \frac{n_b}{N}\,|\mathrm{acc}_b -
\mathrm{conf}_b|.$$

✏️ **Exercise 6.6 (implement).** Write `ece(confidences, correct, n_bins)`
(numpy arrays; a float). The last bin includes 1.0. *Explain:* a model that
always says 50% and is right half the time: what is its ECE, and is it good?
"""


# %% tags=["exercise", "ex-ece"]
def ece(confidences, correct, n_bins):
    raise NotImplementedError(
        "✏️ Exercise: write ece, then re-run this cell and the check below")


# %%
checks.check_ece(ece)

# %% [markdown]
"""
<details><summary>Hint</summary>

**Idea:** within each confidence bin compare how often the model is right
with how sure it is, then average the gaps weighted by each bin's share of
samples. **Pitfalls:** a confidence of exactly 1.0 must land in the last bin
(not a bin of its own); use the mean confidence of the bin's samples, not the
bin's centre; skip empty bins.
</details>

The three policies on the same held-out transcripts (chosen answers),
at temperature 1 and at a grid of temperatures; the fitted T minimises the
negative log-likelihood:
"""

# %%
from rlhf_lessons.measure.calibration import fit_temperature, next_token_stats

cal_ids = draw(oc.n_calib_texts, cfg.seed + 9)
print("transcripts per subset:", per_subset(cal_ids))
# fine steps of 0.05 near 1, where the fit lands; coarse ones out to 3
temps = np.round(np.r_[np.arange(0.5, 1.51, 0.05), [1.75, 2.0, 2.5, 3.0]], 2)
pre_policy, _ = load_policy(cfg, "pretrained", device)
stats = {name: next_token_stats(
    m, tok, [eval_ds[int(i)]["prompt"] for i in cal_ids],
    [eval_ds[int(i)]["chosen_response"] for i in cal_ids], temps,
    cfg.reward.max_len, device)
    for name, m in (("pretrained", pre_policy), ("sft", ref_policy),
                    ("ppo", policy))}
t1 = int(np.argmin(np.abs(temps - 1.0)))
cal = pd.DataFrame({n: {"tokens": len(s["correct"]),
                        "accuracy": s["correct"].mean(),
                        "mean conf": s["conf"][t1].mean(),
                        "ECE (T=1)": ece(s["conf"][t1], s["correct"], 10),
                        **{k + " (fit)": v for k, v in
                           fit_temperature(s, temps).items()}}
                    for n, s in stats.items()}).T
cal.round(3)

# %%
from rlhf_lessons.measure.calibration import reliability_bins
from rlhf_lessons.course.plots import plot_reliability

plot_reliability({n: reliability_bins(s["conf"][t1], s["correct"], 10)
                  for n, s in stats.items()},
                 title="Next-token reliability, held-out text (T = 1)");

# %%
e = cal["ECE (T=1)"]
n_tok = int(cal["tokens"].min())
for a_, b_ in (("pretrained", "sft"), ("sft", "ppo")):
    gap = e[b_] - e[a_]
    verdict = ("worse" if gap > 0.01 else "better" if gap < -0.01
               else "about the same (within 0.01)")
    print(f"{b_} vs {a_}: ECE {e[a_]:.3f} -> {e[b_]:.3f}: {verdict} "
          f"(n = {n_tok}+ tokens)")
print("fitted T:", cal["T (fit)"].to_dict(), "(Kadavath et al.: about "
      "2.5 for their RLHF policies)")

# %% [markdown]
"""
**The judge's own calibration.** The judge says how sure it is that one
answer beats another: σ(r_a − r_b). On held-out pairs, its confidence in the
side it picks against how often that side is the raters' choice:
"""

# %%
from rlhf_lessons.measure.calibration import judge_confidence

jc, jok = judge_confidence(E["eval"][0]["score"], E["eval"][1]["score"])
judge_ece = ece(jc, jok, 5)
print(f"judge: mean confidence {jc.mean():.3f}, accuracy {jok.mean():.3f}, "
      f"ECE (5 bins) {judge_ece:.3f} (n={len(jc)} pairs)")
plot_reliability({"judge": reliability_bins(jc, jok, 5)},
                 title="Judge reliability, held-out pairs");

# %% [markdown]
"""
## 6.7 How much of the gain is length?

Singhal et al. (2023) found that much of PPO's reward gain comes from
length alone. Split the gain of the score PPO optimised (the biased judge)
into a **shift between length bins**, Σ_b (w_after − w_before)·m_before, and
a **gain within bins**, Σ_b w_after·(m_after − m_before); the two add up to
the total.
"""

# %%
from rlhf_lessons.measure.selection import (bootstrap_length_share,
                                    length_decomposition)

col = f"judge b={b_max:g}"
edges = [4, 8, 12, 16, 24]
args = (before.words, before[col], after.words, after[col], edges)
split = length_decomposition(*args)
ls_lo, ls_hi = bootstrap_length_share(*args, n_boot=oc.n_boot, seed=cfg.seed)
print({k: round(v, 3) for k, v in split.items()},
      f"length share 95% CI [{ls_lo:.2f}, {ls_hi:.2f}] (n={len(after)})")
length_claim = V.claim("most of PPO's held-out gain is length (share)",
                       split["length_share"], (ls_lo, ls_hi), len(after),
                       null=0.5)
if split["total"] <= 0:
    print(f"does not apply on our models: PPO gained nothing on held-out "
          f"prompts (total {split['total']:+.3f}); the shift between length "
          f"bins alone is {split['between']:+.3f}")
else:
    print(length_claim["verdict"])

# %% [markdown]
"""
## Check your understanding

1. In 6.2, by how much did best-of-64 raise the share of the confident
   opener over p0? Compare that with the judge's pairwise preference rate.
2. With the δ of 6.1, what share does the tilt formula predict at β = 0.15?
   At β = 0.01? Why does a smaller β turn the same δ into a larger bias?
3. Why can PPO not amplify an opener the policy never writes (p0 = 0)? What
   would it take?
4. In 6.4, did the gold score peak? Name two limits of this experiment.
5. In 6.5, what accuracy on the human labels did each judge keep, and what
   did each pay for the marker? Could you see the bias in the accuracy alone?
6. Did PPO move the marker rate, and by as much as the formula predicts? Why
   might a short PPO run fall short of the optimum?
7. In 6.6, what temperature fits each policy best, and what does a T > 1
   say about the model's confidence?

✏️ **Try it:**
- set `oc = dataclasses.replace(oc, rater_biases=(0.0, 0.25))` and re-run 6.5:
  does the power cell still say the experiment can decide?
- halve `ppo_updates` and compare the marker rate with the formula;
- set `p0` to 0.1 in 6.2: does best-of-N amplify a rare feature more?

## Reading list

- Gao, Schulman, Hilton (2022), *Scaling Laws for Reward Model
  Overoptimization*, arXiv 2210.10760: best-of-n gold R(d) = d(α − βd),
  peak at d* = α/2β; RL R(d) = d(α − β log d).
- Beirami et al. (2024), arXiv 2401.01879: log n − (n−1)/n is an upper bound
  on KL(best-of-n ‖ base); n = 16 gives 1.84 nats.
- Stiennon et al. (2020), *Learning to summarize from human feedback*.
- Singhal et al. (2023), *A Long Way to Go*, arXiv 2310.03716: most of PPO's
  reward gain comes from length.
- Kadavath et al. (2022), *Language Models (Mostly) Know What They Know*,
  arXiv 2207.05221: large pretrained models are well calibrated on
  multiple-choice questions in the right format; RLHF policies look
  miscalibrated, and one temperature (about T = 2.5, as secondary summaries
  quote it; we could not check the paper offline) largely fixes it.
- OpenAI (2023), *GPT-4 Technical Report*, arXiv 2303.08774, Fig. 8: the
  pretrained model is well calibrated on an MMLU subset and the post-trained
  one much less (ECE about 0.007 vs 0.074 in secondary summaries; not
  checked against the figure here).
- Sharma et al. (2023), *Towards Understanding Sycophancy*, arXiv 2310.13548.
"""

# %% [markdown]
"""
## What this notebook showed

Each claim with its number, 95% interval, n and the verdict of the course's
one rule (`rlhf_lessons.measure.verdicts`); the PPO claims also need PPO's
own score to have risen during training.
"""

# %%
claims = [*bon_claims.values(), marker_claim, own_claim, gold_claim]
if split["total"] > 0 and np.isfinite(ls_lo):
    claims.append(length_claim)
V.claims_table(claims)

# %%
from rlhf_lessons.course.artefacts import NOTEBOOKS, update_metrics


def at(r, n):
    return round(float(r["mean"][ns.index(n)]), 4) if n in ns else None


tilt_rows = [{"beta": float(b),
              "predicted_share": round(float(tilt_share(p0_m, delta_m, b)), 4),
              "measured_share": (round(float(res.loc["after", "marker rate"]),
                                       4) if b == cfg.ppo.kl_coef else None)}
             for b in sorted({0.01, 0.03, 0.1, cfg.ppo.kl_coef, 0.3, 1.0})]
r6 = lambda x: round(float(x), 4)  # noqa: E731
metrics = update_metrics(
    NOTEBOOKS["optimisation"], cfg, wall_s=round(time.time() - t0, 1),
    bon_selection={f: {str(n): at(bon[f], n) for n in (1, 4, 16, 64)}
                   for f in bon},
    bon_curve=[{k: r6(r[k]) for k in ("n", "kl_bound", "proxy", "gold")}
               for _, r in curve.iterrows()],
    biased_raters=[{
        "b": float(b), "judge_effect": r6(raters.loc[b, "judge_effect"]),
        "rate_before": r6(p0_m),
        "rate_after": r6(res.loc["after", "marker rate"]) if b == b_max
        else None,
        "rate_after_ci95": [r6(x) for x in res.loc["after", "ci95"]]
        if b == b_max else None,
        "gold_before": r6(res.loc["before", "judge b=0"]) if b == b_max
        else None,
        "gold_after": r6(res.loc["after", "judge b=0"]) if b == b_max
        else None} for b in oc.rater_biases],
    calibration_ece={n: r6(cal.loc[n, "ECE (T=1)"]) for n in cal.index},
    calibration_temperature={n: r6(cal.loc[n, "T (fit)"])
                             for n in cal.index},
    length_share_of_gain=r6(split["length_share"]),
    length_share_ci95=[r6(ls_lo), r6(ls_hi)],
    tilt_prediction=tilt_rows,
    marker=MARKER, judge_ece=r6(judge_ece),
    bias_experiment_min_detectable=r6(detectable),
    bias_experiment_verdict=marker_claim["verdict"],
    claims=claims,
)
{k: metrics[k] for k in ("wall_s", "bon_selection", "calibration_ece")}
