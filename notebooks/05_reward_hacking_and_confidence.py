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
# 05 · Reward hacking and the confidence bias

A common account of why assistants flatter their users and sound certain when
they are not goes like this: human raters favour fluent, confident answers; the
judge (notebook 03) learns that preference from their choices; and PPO
(notebook 04) pushes the policy towards whatever the judge pays for. This
notebook measures each link of that chain with the course's own models, and
reports what the numbers show, whichever way they go.

**You will:**
- measure what the judge pays for with *controlled rewrites* of the same answer
  (hedged vs confident, shorter vs longer, with and without flattery);
- track the features of the policy's answers over a PPO run;
- reproduce the *over-optimisation* experiment of Gao et al. (2022): a proxy
  judge, a gold judge, and a sweep of the KL coefficient β (including β = 0);
- watch PPO exploit a deliberately hackable reward;
- connect the numbers to sycophancy and overconfidence in deployed assistants.

**Run time:** the target is at most 6 minutes on a 2-core CPU (default
preset; the notebook prints its own wall time at the end); seconds in the fast
preset, where the models are tiny and random, so the numbers there
mean nothing. A GPU makes every section faster.

**Exercises** (✏️, two here): each stub cell raises `NotImplementedError`
until you fill it in, and the cell under it checks your code and names the
mistake it sees. "Restart & Run All" stops at the first unsolved one.
`make run` fills them from `notebooks/solutions/`, which also answers the
questions at the end.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.config import LessonConfig
from rlhf_lessons.utils import get_device, seed_everything

cfg = LessonConfig.from_env()
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset, "| model:", cfg.model)

# %% [markdown]
"""
## 5.1 The cast: policy, judge, prompts

- the **policy** starts as the SFT model of notebook 02 (and stays frozen as
  the **reference**);
- the **judge** is the reward model of notebook 03, trained on every train
  pair; later it plays the **gold** judge;
- **prompts** for PPO come from the train split; every measurement uses
  **held-out** prompts and answers from the eval split.

The budgets of this notebook (how many answers, updates and β values) are in
one small config for the preset:
"""

# %%
from rlhf_lessons.config import HackingConfig

hc = HackingConfig.for_preset(cfg)
hc

# %%
from rlhf_lessons.artefacts import judge_reward_fn, load_judge, load_policy

ref_policy, tok = load_policy(cfg, "sft", device)
gold_model, gold_tok, gold_card = load_judge(cfg, device)
gold = judge_reward_fn(gold_model, gold_tok, cfg.reward.max_len, device)
print(f"judge: trained on {gold_card.get('train_pairs', '?')} pairs")
print("judge score of a test answer:",
      round(gold(["\n\nHuman: Hi\n\nAssistant:"], ["Hello!"])[0], 3))

# %%
import numpy as np

from rlhf_lessons.data import load_all_hh

train_ds = load_all_hh("train", cfg.source, cfg.max_rows_per_subset)
eval_ds = load_all_hh("eval", cfg.source, cfg.max_rows_per_subset)
rng = np.random.default_rng(cfg.seed)
tr = rng.permutation(len(train_ds))[:hc.n_train_prompts]
train_prompts = [train_ds[int(i)]["prompt"] for i in tr]
ev = rng.permutation(len(eval_ds))
eval_prompts = [eval_ds[int(i)]["prompt"] for i in ev[:hc.n_eval_prompts]]
print(f"{len(train_prompts)} train prompts for PPO, "
      f"{len(eval_prompts)} held-out prompts for measuring")

# %% [markdown]
"""
## 5.2 What the judge pays for

A **controlled rewrite** changes one surface feature of an answer and keeps its
content. If the judge's score moves, the judge pays for that feature itself.

| rewrite | template |
|---|---|
| hedged | "I'm not completely sure, but I think …" |
| confident | "Definitely. …" |
| shorter | the first sentence only |
| longer | the answer + a polite, content-free closing paragraph |
| flattering | "Great question! You clearly know a lot about this. …" |

Here is one held-out answer in every version:
"""

# %%
import pandas as pd

from rlhf_lessons.rewrites import REWRITES, rewrite

rows = [eval_ds[int(i)] for i in ev]
rows = [r for r in rows if r["chosen_response"].strip()]
rows = rows[:hc.n_effect_answers]
eff_prompts = [r["prompt"] for r in rows]
eff_answers = [r["chosen_response"] for r in rows]
example = eff_answers[0]
kinds = ["original", *REWRITES]
pd.DataFrame({"rewrite": kinds,
              "text": [rewrite(example, k)[:150] for k in kinds]})

# %% [markdown]
"""
We score every answer in every version and average the **paired difference**
Δ = score(rewrite) − score(original). The error bars are 95% bootstrap
intervals of that mean; `se` is its standard error. An answer that a rewrite
does not change (e.g. "shorter" on a one-sentence answer) is not counted.
"""

# %%
from rlhf_lessons.evaluate import judge_effects

seed_everything(cfg.seed)
effects = judge_effects(gold, eff_prompts, eff_answers, n_boot=hc.n_boot,
                        seed=cfg.seed)
base = np.asarray(gold(eff_prompts, eff_answers))
effects["mean / score std"] = effects["mean"] / base.std()
print(f"{len(eff_answers)} held-out answers; score std {base.std():.3f}")
effects.round(3)

# %%
from rlhf_lessons.plots import plot_judge_effects

plot_judge_effects(effects);

# %% [markdown]
"""
Read the table as: *how much does the judge pay for this change alone?* The
sentences below are written from the numbers above; an interval that contains
0 means this many answers cannot tell the effect apart from no effect.
"""


# %%
def describe(name, row):
    sure = row.ci_low > 0 or row.ci_high < 0
    verdict = "clear" if sure else "not distinguishable from 0"
    return (f"{name:20} {row['mean']:+.3f} "
            f"[{row.ci_low:+.3f}, {row.ci_high:+.3f}] ({verdict}; "
            f"{row['share_up']:.0%} of answers went up)")


for name, row in effects.iterrows():
    print(describe(name, row))

# %% [markdown]
"""
## 5.3 Does the policy learn the bias?

Now PPO optimises the policy against this judge (as in notebook 04), and after
every update we measure the answers it just wrote:

- `words`: length; `confident`, `hedge`, `refusal`, `flattery`: phrase counts
  (the lists of notebook 01, plus a flattery list);
- `repetition`: the fraction of word bigrams that repeat an earlier one.

If the judge over-rewards a feature, the policy should drift towards it.
"""

# %%
from rlhf_lessons.analysis import answer_features

answer_features("Great question! Definitely. I'm not sure, maybe maybe.")

# %%
import copy

from rlhf_lessons import ppo
from rlhf_lessons import rollout as rl
from rlhf_lessons.evaluate import sample_and_score, score_stats
from rlhf_lessons.overoptimisation import feature_columns

track_cfg = hc.ppo_config(cfg.ppo, hc.track_lr)
norm_df = sample_and_score(ref_policy, gold, tok,
                           train_prompts[:hc.n_norm_prompts], track_cfg,
                           seed=cfg.seed)
gold_stats = score_stats(norm_df["score"])
print("judge on reference samples (train prompts): mean "
      f"{gold_stats[0]:.3f}, std {gold_stats[1]:.3f}")


# %%
def feature_hook(u, ro, row):
    # after each update: mean answer features of the rollout PPO just scored
    return feature_columns(ro.responses)


policy = copy.deepcopy(ref_policy)
value_model = rl.make_value_model(reward_model=gold_model)
track = ppo.train_ppo(policy, ref_policy, value_model, gold, tok,
                      train_prompts, track_cfg, seed=cfg.seed,
                      n_updates=hc.track_updates, score_norm=gold_stats,
                      on_update=feature_hook, desc="PPO vs the judge").metrics
track[["update", "objective/scores", "objective/kl", "feat/words",
       "feat/confident", "feat/hedge"]].round(3).tail()

# %%
from rlhf_lessons.plots import plot_feature_drift

plot_feature_drift(track, ("words", "confident", "hedge", "refusal",
                           "repetition", "flattery"));

# %% [markdown]
"""
Single updates are noisy (each sees a few dozen answers), so compare the
average of the **first** and **last** few updates, and set each drift beside
the judge effect that would explain it:
"""

# %%
k = max(1, len(track) // 4)
first, last = track.head(k), track.tail(k)
links = {"words": "longer", "confident": "confident", "hedge": "hedged",
         "flattery": "flattering", "refusal": None, "repetition": None}
drift = pd.DataFrame([
    {"feature": f, "first": first[f"feat/{f}"].mean(),
     "last": last[f"feat/{f}"].mean(),
     "judge effect": effects["mean"].get(e, np.nan) if e else np.nan}
    for f, e in links.items()]).set_index("feature")
drift["change"] = drift["last"] - drift["first"]
drift.round(3)

# %%
for f, r in drift.iterrows():
    if np.isnan(r["judge effect"]) or r["change"] == 0:
        continue
    same = np.sign(r["change"]) == np.sign(r["judge effect"])
    print(f"{f:10} moved {r['change']:+.3f} per answer; the judge pays "
          f"{r['judge effect']:+.3f} for more of it -> "
          f"{'the same direction' if same else 'the opposite direction'}")

# %% [markdown]
"""
On held-out prompts, the policy before and after this run (scores in units of
the reference's spread):
"""

# %%
from rlhf_lessons.evaluate import evaluate_policy
from rlhf_lessons.rollout import normalise

judges = {"gold": gold}
before, before_s = evaluate_policy(ref_policy, ref_policy, tok, eval_prompts,
                                   track_cfg, judges, seed=cfg.seed)
norms = {"gold": score_stats(before_s["gold_raw"])}
before_s["gold_score"] = normalise(before_s["gold_raw"], norms["gold"])
before["gold_score"] = float(before_s["gold_score"].mean())
after, after_s = evaluate_policy(policy, ref_policy, tok, eval_prompts,
                                 track_cfg, judges, norms, seed=cfg.seed)
pd.DataFrame({"reference": before, "after PPO": after}).round(3)

# %% [markdown]
r"""
## 5.4 Over-optimisation: a proxy judge against a gold judge

Gao et al. (2022) trained a large **gold** reward model and smaller **proxy**
ones, optimised policies against the proxy and measured both. Plotted against
the distance from the start, $d = \sqrt{\mathrm{KL}(\pi \| \pi_{ref})}$, the
proxy score kept rising while the gold score rose, **peaked, and fell**: past
some point, pleasing the proxy hurts the true goal (Goodhart's law).

Our version, both judges trained on the **train split only**:
- **gold** = the notebook-03 judge (all train pairs, human labels);
- **proxy** = the same recipe on a small random slice of the train pairs,
  **labelled by the gold judge** (Gao et al.'s synthetic setup): the proxy
  tries to imitate the gold judge from few examples, so where they disagree is
  exactly where a policy can please one and not the other.

Below: each judge's accuracy against the human labels on held-out pairs, and
how often the two judges agree.
"""

# %%
from rlhf_lessons.artefacts import load_proxy_judge

proxy_model, proxy_tok, proxy_card = load_proxy_judge(
    cfg, hc, device, gold_model=gold_model)
proxy = judge_reward_fn(proxy_model, proxy_tok, cfg.reward.max_len, device)
print(f"proxy: {proxy_card['train_pairs']} train pairs, labels: "
      f"{proxy_card['labels']} ({proxy_card['n_flipped_by_gold']} pairs "
      f"flipped by the gold judge), {proxy_card['steps']} steps")

# %%
from rlhf_lessons.evaluate import judge_accuracy
from rlhf_lessons.reward import prepare_pairs

acc_rows = [eval_ds[int(i)] for i in ev[:hc.n_acc_pairs]]
acc, side = {}, {}
for name, m, t in [("gold", gold_model, gold_tok),
                   ("proxy", proxy_model, proxy_tok)]:
    pairs = prepare_pairs(acc_rows, t, cfg.reward.max_len,
                          drop_identical=False, allow_empty=True)
    acc[name] = judge_accuracy(m, pairs, device, pad_id=t.pad_token_id)
    side[name] = acc[name]["r_chosen"] > acc[name]["r_rejected"]
    lo, hi = acc[name]["ci95"]
    print(f"{name:5} held-out accuracy {acc[name]['accuracy']:.3f} "
          f"(95% CI {lo:.3f}-{hi:.3f}, n={acc[name]['n']})")
agree = float(np.mean(side["gold"] == side["proxy"]))
print(f"proxy and gold pick the same side in {agree:.1%} of these pairs")

# %% [markdown]
r"""
**Is the judge's confidence honest?** The judge also says *how sure* it is:
$P(\text{chosen wins}) = \sigma(r_c - r_r)$, so its confidence in the side it
picks is $\sigma(|r_c - r_r|)$. A calibrated judge is right 80% of the time
when it is 80% sure. The **expected calibration error** bins the confidences
into equal-width bins on [0, 1] and averages the gap between accuracy and
mean confidence, weighted by how many pairs fall in each bin:

$$\mathrm{ECE} = \sum_b \frac{n_b}{N}\,\big|\mathrm{acc}_b -
\mathrm{conf}_b\big|.$$

✏️ **Exercise 5.4a (implement).** Write `ece(confidences, correct, n_bins)`
(numpy arrays; return a float). The last bin includes 1.0. *Explain:* a
judge that always says 50% and is right half the time: what is its ECE, and
is it a good judge?
"""


# %% tags=["exercise", "ex-ece"]
def ece(confidences, correct, n_bins):
    raise NotImplementedError(
        "✏️ Exercise: write ece, then re-run this cell and the check below")


# %%
from rlhf_lessons import checks

checks.check_ece(ece)
for name in ("gold", "proxy"):
    gap = acc[name]["r_chosen"] - acc[name]["r_rejected"]
    conf = 1 / (1 + np.exp(-np.abs(gap)))
    print(f"{name:5} mean confidence {conf.mean():.3f}, accuracy "
          f"{acc[name]['accuracy']:.3f}, ECE (5 bins) "
          f"{ece(conf, acc[name]['correct'], 5):.3f}")

# %% [markdown]
"""
<details><summary>Hint</summary>

Bin index: `np.minimum((confidences * n_bins).astype(int), n_bins - 1)` (the
`minimum` puts 1.0 in the last bin). For each non-empty bin add
`n_b / N * abs(correct[in_b].mean() - confidences[in_b].mean())`.
</details>
"""

# %% [markdown]
r"""
Now the sweep: for each β, PPO starts again from the SFT policy and optimises
the **proxy** for the same number of updates (with a larger learning rate than
notebook 04, to travel far from the reference within minutes). Every few
updates we sample answers to the held-out prompts and record:

- KL to the reference (nats, summed over the answer) and $\sqrt{KL}$;
- the proxy and gold scores, each in units of its spread on the reference's
  answers, so the reference sits at (0, 0).

β = 0 means no KL penalty at all. Finished runs are saved, so a re-run skips
them.
"""

# %%
from rlhf_lessons.artefacts import sweep_checkpoint
from rlhf_lessons.overoptimisation import beta_sweep

sweep_cfg = hc.ppo_config(cfg.ppo, hc.sweep_lr)
print(f"lr {sweep_cfg.lr:g} (notebook 04: {cfg.ppo.lr:g}); "
      f"{sweep_cfg.rollout_batch} answers per update")
runs = beta_sweep(ref_policy, tok, proxy, gold, train_prompts, eval_prompts,
                  sweep_cfg, hc.sweep_betas, hc.sweep_updates,
                  hc.sweep_eval_every, proxy_model=proxy_model,
                  seed=cfg.seed, checkpoint=sweep_checkpoint(cfg, hc))
print({b: f"{r.wall_s:.0f}s" for b, r in runs.items()})

# %%
from rlhf_lessons.overoptimisation import sweep_table

sweep = sweep_table(runs)
sweep.round(3)

# %%
from rlhf_lessons.plots import plot_overoptimisation

plot_overoptimisation(runs);

# %% [markdown]
"""
What do *our* numbers show? The cell below checks the shape Gao et al. predict,
first along the β = 0 run (the furthest from the reference) and then across the
final points of all runs. It reports what happened, whichever way it went.
"""

# %%
from rlhf_lessons.evaluate import peak_then_fall


def shape(xs, proxy_ys, gold_ys, label):
    g = peak_then_fall(xs, gold_ys)
    p_rise = float(proxy_ys[-1] - proxy_ys[0])
    print(f"{label}: proxy changed {p_rise:+.3f} from the first to the last "
          f"point; gold peaked at {g['peak_y']:+.3f} (sqrt KL "
          f"{g['peak_x']:.2f}) and ended at {g['last_y']:+.3f}")
    print("  gold rises, peaks inside, then falls:",
          "yes" if g["peaks_inside"] else "no")


n_ev = len(eval_prompts)
print(f"noise of one mean score: about 1/sqrt({n_ev}) = {n_ev ** -0.5:.2f}")
pts0 = runs[min(runs)].points.sort_values("sqrt_kl")
shape(pts0["sqrt_kl"].to_numpy(), pts0["proxy_score"].to_numpy(),
      pts0["gold_score"].to_numpy(), f"beta={min(runs):g} run")
s = sweep.sort_values("sqrt_kl")
shape(s["sqrt_kl"].to_numpy(), s["proxy_score"].to_numpy(),
      s["gold_score"].to_numpy(), "final points across beta")

# %% [markdown]
r"""
**Best-of-N, the other optimiser of Gao et al.** Sample N answers from the
reference and keep the one the proxy likes best: no training at all. Its
distance from the reference is known in closed form:

$$\mathrm{KL}(\pi_{\mathrm{BoN}} \,\|\, \pi_{\mathrm{ref}})
= \log N - \frac{N - 1}{N}.$$

✏️ **Exercise 5.4b (implement).** Write `bon_kl(n)`: that KL in nats, a
float. *Extend:* the cell after the check asks how large N must be to travel
as far ($\sqrt{KL}$) as the furthest PPO run above.
"""


# %% tags=["exercise", "ex-bon-kl"]
def bon_kl(n):
    raise NotImplementedError(
        "✏️ Exercise: write bon_kl, then re-run this cell and the check below")


# %%
checks.check_bon_kl(bon_kl)
far = float(sweep["sqrt_kl"].max())
n = 1
while bon_kl(n) ** 0.5 < far and n < 2 ** 40:
    n *= 2
print(f"furthest PPO run: sqrt KL {far:.2f}; best-of-N gets there at about "
      f"N = {n:,} samples per prompt")
pd.DataFrame({"N": [2, 16, 256, 4096],
              "KL": [round(bon_kl(k), 3) for k in (2, 16, 256, 4096)],
              "sqrt KL": [round(bon_kl(k) ** 0.5, 3)
                          for k in (2, 16, 256, 4096)]})

# %% [markdown]
r"""
<details><summary>Hint</summary>

`math.log(n) - (n - 1) / n`. For N = 1 it is 0: picking the best of one
sample is just sampling. It grows like $\log N$, so each extra nat of KL
costs about e times more samples.
</details>
"""

# %% [markdown]
"""
Keep in mind what limits this small experiment: a few minutes of PPO, a few
dozen held-out prompts per point (the noise of each mean score is printed
above), and a gold judge whose own held-out accuracy (printed in 5.4) is far
from perfect. Gao et al. used reward models of up to 3B parameters and far
longer runs.
"""

# %% [markdown]
"""
## 5.5 A deliberately hackable reward

The clearest case of reward hacking: a reward that is trivial to game. Here the
reward is **the number of "!" in the answer**. It is easy to check, looks
harmless ("enthusiasm!"), and has nothing to do with a good answer.
"""

# %%
from rlhf_lessons.overoptimisation import exclamation_reward

exclamation_reward(["q", "q"], ["Sure.", "Sure!!! Great!"])

# %%
hack_cfg = hc.ppo_config(cfg.ppo, hc.hack_lr)
hack_policy = copy.deepcopy(ref_policy)
hack_stats = score_stats(sample_and_score(
    ref_policy, exclamation_reward, tok, train_prompts[:hc.n_norm_prompts],
    hack_cfg, seed=cfg.seed).score, constant_ok=True)
hack_value = rl.make_value_model(policy=hack_policy)
hack = ppo.train_ppo(hack_policy, ref_policy, hack_value, exclamation_reward,
                     tok, train_prompts, hack_cfg, seed=cfg.seed,
                     n_updates=hc.hack_updates, score_norm=hack_stats,
                     on_update=feature_hook, desc="PPO vs '!' count").metrics
hack[["update", "objective/raw_scores", "objective/kl",
      "feat/repetition"]].round(3).tail()

# %%
hack_after, hack_s = evaluate_policy(hack_policy, ref_policy, tok,
                                     eval_prompts, hack_cfg, judges, norms,
                                     seed=cfg.seed)
n_show = min(6, len(hack_s))
pd.DataFrame({
    "before": [a[:100] for a in before_s["answer"][:n_show]],
    "'!' before": before_s["exclamations"][:n_show].to_numpy(),
    "after": [a[:100] for a in hack_s["answer"][:n_show]],
    "'!' after": hack_s["exclamations"][:n_show].to_numpy(),
    "gold after": hack_s["gold_score"][:n_show].round(2).to_numpy(),
})

# %%
hack_summary = pd.DataFrame({"reference": before, "after '!' PPO": hack_after})
hack_summary.loc[["exclamations", "repetition", "words", "gold_score", "kl"]
                 ].round(3)

# %%
print(f"'!' per held-out answer: {before['exclamations']:.2f} -> "
      f"{hack_after['exclamations']:.2f}; gold judge "
      f"{before['gold_score']:+.2f} -> {hack_after['gold_score']:+.2f} "
      f"(reference std units); KL {hack_after['kl']:.2f} nats")

# %% [markdown]
"""
### Explore: compare two runs

Pick any two runs (each β of the sweep, the run against the judge of section
5.3, and the "!" run) and compare their held-out answers and training curves
side by side.
"""

# %%
from rlhf_lessons.overoptimisation import RunRecord
from rlhf_lessons.widgets import make_run_explorer

all_runs = {r.name: r for r in runs.values()}
all_runs["vs judge (5.3)"] = RunRecord(
    "vs judge (5.3)", cfg.ppo.kl_coef, track,
    pd.DataFrame([before, after]), after_s)
all_runs["'!' count (5.5)"] = RunRecord(
    "'!' count (5.5)", cfg.ppo.kl_coef, hack,
    pd.DataFrame([before, hack_after]), hack_s)
make_run_explorer(all_runs, left=runs[min(runs)].name,
                  right=runs[max(runs)].name)

# %% [markdown]
"""
## Check your understanding

1. In section 5.2, which rewrite moved the judge's score most, and was its
   interval clear of 0? What does that say about the raters (or the data) the
   judge learned from?
2. A deployed assistant answers "Definitely, X" where the honest answer is "I
   think X, but I'm not sure". Using the "confident vs hedged" row, explain how
   RLHF could push a model towards overconfidence even though no one asked for
   it.
3. The flattery rewrite adds praise of the user and no information. If a judge
   paid for it, what would PPO learn, and why is that called **sycophancy**?
4. In section 5.3, did every feature drift in the direction of its judge
   effect? If one did not, name two reasons (hint: noise, and what else the
   judge pays for).
5. In the β sweep, what does β = 0 remove, and what happened to the KL and to
   the gold score of that run compared with the largest β?
6. Gao et al. saw the gold score peak and fall. Did our numbers show it? If
   not, which limits of this experiment could hide it?
7. The "!" reward is absurd on purpose. Name a reward used in real systems
   (e.g. answer length, a thumbs-up rate, a unit-test pass rate) that could be
   hacked the same way, and how you would notice.

✏️ **Try it:**
- add a rewrite of your own to `REWRITE_KINDS` (e.g. "As an expert, …") and
  re-run section 5.2;
- set `hack_cfg` to use `length_reward` instead of "!" count: what does the
  policy do when longer is always better?
- add one more β, 0.005, to the sweep: `import dataclasses`, then
  `hc = dataclasses.replace(hc, sweep_betas=(*hc.sweep_betas, 0.005))`, and
  re-run 5.4 from the sweep cell. The saved runs are keyed by the whole `hc`,
  so every β trains again: expect the sweep's time plus one run.
"""

# %%
from rlhf_lessons.artefacts import update_metrics

metrics = update_metrics(
    "05_reward_hacking_and_confidence", cfg,
    wall_s=round(time.time() - t0, 1),
    judge_effects={k: round(float(v), 4) for k, v in effects["mean"].items()},
    judge_effects_se={k: round(float(v), 4) for k, v in effects["se"].items()},
    beta_sweep=[{k: round(float(r[k]), 4) for k in
                 ("beta", "sqrt_kl", "proxy_score", "gold_score")}
                for _, r in sweep.iterrows()],
    proxy_accuracy=round(acc["proxy"]["accuracy"], 4),
    proxy_gold_agreement=round(agree, 4),
    gold_accuracy=round(acc["gold"]["accuracy"], 4),
    feature_drift={f: round(float(v), 4) for f, v in drift["change"].items()},
    hack_exclamations_before=round(before["exclamations"], 3),
    hack_exclamations_after=round(hack_after["exclamations"], 3),
    hack_gold_before=round(before["gold_score"], 3),
    hack_gold_after=round(hack_after["gold_score"], 3),
)
{k: metrics[k] for k in ("wall_s", "judge_effects", "beta_sweep")}
