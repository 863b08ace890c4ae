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
# 08 · Graduate to TRL

Notebooks 02-07 built every step of RLHF by hand, small enough to read. When
you outgrow a laptop, you will not scale that code up: you will hand the same
data and models to the engines people train with. The first of them is
**TRL** (Hugging Face's RLHF library, built on `transformers.Trainer` and
`accelerate`). This notebook hands it the course's pairs, policy and judge,
one trainer at a time, and checks that what comes back reads the same.

**You will:**
- turn the course's HH pairs into TRL's three dataset formats;
- train a reward model with TRL's `RewardTrainer` and compare it with the
  course's judge on the same held-out pairs;
- run TRL's `DPOTrainer` from the course's SFT policy;
- run TRL's `GRPOTrainer` with the course's judge and a rule as rewards;
- read a TRL log with the names you know, and find the command that runs the
  same recipe on many GPUs (and where OpenRLHF and verl take over).

**Run time:** the target is at most 6 minutes on a 2-core CPU (default
preset; the notebook prints its own wall time at the end); seconds in the fast
preset, where the models are tiny and random, so the numbers there
mean nothing. It needs `trl` and `accelerate` (pinned in `requirements.txt`).

**Finished runs:** the reward-model and DPO runs of 9.2 and 9.3 travel
finished in `data/runs/` (`data/runs/README.md` lists how long each trained
when it was shipped), keyed by TRL's version, every config field, the
training rows and the starting weights, so the series fits its 15 minutes:
change any of them (or set `RETRAIN = True` below) and that run trains here.
GRPO (9.4) trains live.

**Instructor's path (50 minutes):** 9.1 (formats, 5 min), 9.2 (the reward
model, 10 min), 9.4 (GRPO with the judge, 15 min, about 20 s live), 9.5
(reading a log, 5 min), 9.6-9.7 (many GPUs and the map, 10 min); leave 9.3
(DPO) as homework.

**Exercises:** none here; the ✏️ Try it prompts at the end are runs of TRL.
"""

# %%
import time
t0 = time.time()

from rlhf_lessons.core.config import LessonConfig
from rlhf_lessons.core.utils import get_device, seed_everything

RETRAIN = False  # True: train TRL's reward model and DPO here, not load them
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
print("preset:", cfg.preset, "| model:", cfg.model.name)

# %% [markdown]
"""
TRL, transformers and accelerate print a lot of information for settings we
chose on purpose (a CPU run, fp32, no tracker). One call silences exactly
those messages; any other warning still shows.
"""

# %%
import accelerate
import trl

from rlhf_lessons.train.trl_bridge import quiet

quiet()
versions = {"trl": trl.__version__, "accelerate": accelerate.__version__}
versions

# %% [markdown]
"""
## 9.1 Our pairs in TRL's formats: which can TRL read whole?

TRL's trainers read a `datasets.Dataset` whose columns say what each row is:

| format | columns | used here by |
|---|---|---|
| implicit prompt | `chosen`, `rejected` (whole transcripts) | reward |
| explicit prompt | `prompt`, `chosen`, `rejected` (answers) | DPO |
| conversational | the same as `{"role", "content"}` lists | either |
| prompt only | `prompt` | GRPO, RLOO |

A conversational row needs a chat template to become text.

The budgets of this notebook live in one small config for the preset:
"""

# %%
import dataclasses

import pandas as pd

from rlhf_lessons.core.config import GraduateConfig

gc = GraduateConfig.for_preset(cfg)
# one row per budget (a table, not the dataclass on one line)
pd.json_normalize(dataclasses.asdict(gc)).T.rename(columns={0: "value"})

# %% [markdown]
"""
TRL **drops** a pair longer than `max_length` tokens (the course's trainer
cuts the oldest turns instead). So we keep the pairs that fit whole, and draw
the train and held-out samples from them, stratified across the four subsets
and seeded:
"""

# %%
import collections

from rlhf_lessons.course.artefacts import course_tokenizer
from rlhf_lessons.core.data import load_all_hh
from rlhf_lessons.core.data import stratified_sample
from rlhf_lessons.train.trl_bridge import fitting_rows

tok = course_tokenizer()
max_len = cfg.reward.max_len
train_ds = load_all_hh("train", cfg.source, cfg.max_rows_per_subset)
eval_ds = load_all_hh("eval", cfg.source, cfg.max_rows_per_subset)
fit_tr = fitting_rows(train_ds["chosen"], train_ds["rejected"], tok, max_len)
fit_ev = fitting_rows(eval_ds["chosen"], eval_ds["rejected"], tok, max_len)
print(f"pairs that fit in {max_len} tokens: train {len(fit_tr)} of "
      f"{len(train_ds)}, held-out {len(fit_ev)} of {len(eval_ds)}")

# %%
def draw(ds, fit, n, seed):
    """n row indices of ds among the fitting ones, stratified and seeded."""
    subsets = [ds[int(i)]["subset"] for i in fit]
    return fit[stratified_sample(subsets, n, seed)]


rm_rows = draw(train_ds, fit_tr, gc.n_train_pairs, cfg.seed)
dpo_rows = draw(train_ds, fit_tr, gc.dpo_pairs, cfg.seed + 1)
ev_rows = draw(eval_ds, fit_ev, gc.n_eval_pairs, cfg.seed)
for name, ds, rows in [("reward model", train_ds, rm_rows),
                       ("DPO", train_ds, dpo_rows),
                       ("held-out", eval_ds, ev_rows)]:
    count = collections.Counter(ds[int(i)]["subset"] for i in rows)
    print(f"{name:>12}: {len(rows)} pairs", dict(sorted(count.items())))

# %% [markdown]
"""
One pair in each format. *Content note:* HH-RLHF's harmless subsets hold
red-team prompts; the examples here start on a helpful row (set
`SHOW_ALL = True` to draw from every subset).
"""

# %%
from rlhf_lessons.core.preference_formats import trl_row

SHOW_ALL = False
shown = [int(i) for i in rm_rows
         if SHOW_ALL or train_ds[int(i)]["subset"].startswith("helpful")]
pair = train_ds[shown[0]]
def tail(v, n=90):
    return str(v) if len(str(v)) <= n else "…" + str(v)[-n:]


for fmt in ("implicit", "explicit", "conversational"):
    row = trl_row(pair["chosen"], pair["rejected"], fmt)
    print(f"--- {fmt}:", {k: tail(v) for k, v in row.items()})

# %% [markdown]
"""
A **chat template** turns a list of messages into the text the model reads.
The course tokenizer has none; `HH_CHAT_TEMPLATE` writes HH transcripts. Does
it give back exactly the transcripts the course trains on, for every pair?
"""

# %%
from rlhf_lessons.core.preference_formats import HH_CHAT_TEMPLATE

tok.chat_template = HH_CHAT_TEMPLATE
same = 0
for i in rm_rows:
    r = train_ds[int(i)]
    conv = trl_row(r["chosen"], r["rejected"], "conversational")
    text = tok.apply_chat_template(conv["prompt"] + conv["chosen"],
                                   tokenize=False)
    same += text == r["chosen"].rstrip()
verdict = "holds" if same == len(rm_rows) else "does not hold"
print(f"template == transcript for {same} of {len(rm_rows)} pairs: {verdict}")

# %% [markdown]
r"""
## 9.2 TRL's RewardTrainer: does it match the course's judge?

`RewardTrainer` trains the model of notebook 03: a GPT-2 with a one-number
head, the Bradley-Terry loss $-\log\sigma(r_c - r_r)$, the score read at the
last real token. We start it from the course's **pretrained** GPT-2, like the
judge, with the judge's head initialisation:
"""

# %%
from rlhf_lessons.course.artefacts import load_policy, output_dir
from rlhf_lessons.train.reward import build_reward_model

backbone, _ = load_policy(cfg, "pretrained", device)
reward_model = build_reward_model(backbone, tok.pad_token_id, seed=cfg.seed)
run_dir = output_dir("09_graduate_to_trl", cfg)
n_params = sum(p.numel() for p in reward_model.parameters())
print(f"reward model: {n_params / 1e6:.1f}M parameters")

# %% [markdown]
"""
A TRL run is a **config** (a `TrainingArguments` with the method's own
fields), a **trainer** and a dataset. `common_args` holds what every run here
shares: no tracker (`report_to="none"`), no checkpoints, fp32 on the CPU.
"""

# %%
from datasets import Dataset
from trl import RewardConfig, RewardTrainer

from rlhf_lessons.train.trl_bridge import common_args, drop_printing

on_cpu = device.type == "cpu"  # TRL picks the GPU itself unless told
rm_data = Dataset.from_list(
    [trl_row(train_ds[int(i)]["chosen"], train_ds[int(i)]["rejected"])
     for i in rm_rows])
rm_args = RewardConfig(
    **common_args(run_dir / "trl-reward", cfg.seed, on_cpu, log_every=2),
    max_length=max_len, per_device_train_batch_size=gc.rm_batch,
    num_train_epochs=1, learning_rate=gc.rm_lr, lr_scheduler_type="linear")
rm_trainer = RewardTrainer(model=reward_model, args=rm_args,
                           train_dataset=rm_data, processing_class=tok)
drop_printing(rm_trainer, "RewardTrainer")
print(f"TRL kept {len(rm_trainer.train_dataset)} of {len(rm_data)} pairs")

# %% [markdown]
"""
`rm_trainer.train()` runs it. What the run is *for* here is its scores of the
held-out pairs, so one function trains and then scores them; `load_or_build`
keeps its result under `outputs/`, keyed by `trl_run_settings` (TRL's version,
the config, the rows, the starting weights), and the shipped copy of that
result is what loads unless something in the key changed.
"""

# %%
import numpy as np

from rlhf_lessons.course.artefacts import (
    hh_pairs,
    load_or_build,
    texts_digest,
    trl_run_settings,
)
from rlhf_lessons.train.reward import score_pairs
from rlhf_lessons.train.trl_bridge import log_history, train_seconds

# the eval split, tokenised once (the judge reads the course tokenizer too)
all_eval = hh_pairs(cfg, tok, "eval")
eval_pairs = all_eval.select(ev_rows)


def train_rm():
    """TRL's run, then its scores of the held-out pairs (what 9.2 measures)."""
    rm_trainer.train()
    rc, rr = score_pairs(reward_model.eval(), eval_pairs, device,
                         pad_id=tok.pad_token_id)
    return {"log": log_history(rm_trainer), "train_s": train_seconds(rm_trainer),
            "scores": (np.asarray(rc, np.float64), np.asarray(rr, np.float64))}


rm_run = load_or_build(
    cfg, "trl-reward",
    trl_run_settings(rm_args, rm_data, reward_model, eval=texts_digest(eval_pairs)),
    train_rm, f"TRL's reward-model run ({len(rm_data)} pairs) and its held-out "
    "scores", notebook="graduate")
rm_log = rm_run["log"]
rm_log[["step", "loss", "accuracy", "margin", "mean_reward"]].round(3).tail()

# %% [markdown]
"""
Now the same held-out pairs for both: TRL's reward model and the course's
judge (trained on every train pair in notebook 03), each scored by the course's
`judge_accuracy`, so only the models differ.
"""

# %%
import pandas as pd

from rlhf_lessons.course.artefacts import judge_pair_scores, load_judge
from rlhf_lessons.measure.evaluate import judge_accuracy

judge, judge_tok, judge_card = load_judge(cfg, device)
# the course judge's scores of every eval pair were kept by notebook 03: read these
judge_rc, judge_rr = judge_pair_scores(cfg, judge, judge_tok, all_eval, device)
from rlhf_lessons.measure import verdicts as V

# power before scoring (these pairs serve TRL's reward model and DPO alike)
print(V.power_line("held-out accuracy", len(eval_pairs),
                   V.min_detectable_rate(0.5, len(eval_pairs), one_sample=True)))
acc = {"TRL RewardTrainer": judge_accuracy(
           reward_model, eval_pairs, scores=rm_run["scores"]),
       "course judge (03)": judge_accuracy(
           judge, eval_pairs, scores=(judge_rc[ev_rows], judge_rr[ev_rows]))}
pd.DataFrame([{"model": k, "accuracy": round(v["accuracy"], 3),
               "95% CI": tuple(round(x, 3) for x in v["ci95"]), "n": v["n"]}
              for k, v in acc.items()])

# %%
from rlhf_lessons.measure.evaluate import mean_with_error

a, b = acc["TRL RewardTrainer"], acc["course judge (03)"]
diff = mean_with_error(a["correct"].astype(float) - b["correct"].astype(float))
lo, hi = diff["ci_low"], diff["ci_high"]
print(f"TRL minus judge: {diff['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f},"
      f" n = {diff['n']} paired pairs); TRL saw {len(rm_data)} train pairs,"
      f" the judge {judge_card.get('train_pairs', '?')}")
if lo > 0 or hi < 0:
    print("TRL's RM and the judge differ:",
          "TRL ahead" if lo > 0 else "the judge ahead")
else:
    print(f"cannot tell them apart with n = {diff['n']}")
# TRL's reward model beats a coin only if its training loss fell too
rm_claim = V.claim("TRL's reward model beats a coin (held-out accuracy)",
                   a["accuracy"], a["ci95"], a["n"], null=0.5,
                   curve_moved=V.curve_moved(rm_log["loss"], rises=False))
print(f"TRL's reward model: {a['accuracy']:.3f} [{a['ci95'][0]:.3f}, "
      f"{a['ci95'][1]:.3f}] against a coin's 0.5: {rm_claim['verdict']}")

# %% [markdown]
r"""
## 9.3 TRL's DPOTrainer: does DPO learn from the same pairs?

DPO (notebook 07) needs no reward model: it raises the log-probability of the
chosen answer against a frozen **reference**, both from the SFT policy. Its
*implicit reward* of an answer is $\beta(\log\pi - \log\pi_{ref})$, and
TRL logs how often it ranks chosen first as `rewards/accuracies`. DPO reads
the **explicit-prompt** format:
"""

# %%
from trl import DPOConfig, DPOTrainer

policy, _ = load_policy(cfg, "sft", device)
ref_policy, _ = load_policy(cfg, "sft", device)
dpo_data = Dataset.from_list(
    [trl_row(train_ds[int(i)]["chosen"], train_ds[int(i)]["rejected"],
             "explicit") for i in dpo_rows])
dpo_args = DPOConfig(
    **common_args(run_dir / "trl-dpo", cfg.seed, on_cpu, log_every=2),
    max_length=max_len, beta=gc.dpo_beta, learning_rate=gc.dpo_lr,
    per_device_train_batch_size=gc.dpo_batch, num_train_epochs=1)
dpo_trainer = DPOTrainer(model=policy, ref_model=ref_policy, args=dpo_args,
                         train_dataset=dpo_data, processing_class=tok)
drop_printing(dpo_trainer, "DPOTrainer")
print(f"{len(dpo_data)} pairs, columns {dpo_data.column_names}")

# %% [markdown]
"""
As in 9.2, one function trains and keeps what the run is measured by: the
trained policy's log-probs of the held-out pairs (for the implicit reward
below) and its answers to three held-out prompts (for the table after it).
"""

# %%
from rlhf_lessons.measure.evaluate import sample_and_score
from rlhf_lessons.train.dpo import all_pair_logprobs

# three held-out prompts to read answers from (helpful ones unless SHOW_ALL)
show = [int(i) for i in ev_rows if SHOW_ALL
        or eval_ds[int(i)]["subset"].startswith("helpful")][:3]
few = [eval_ds[i]["prompt"] for i in show]


def train_dpo():
    """TRL's run, then the trained policy's held-out log-probs and answers."""
    dpo_trainer.train()
    policy.eval()
    return {"log": log_history(dpo_trainer), "train_s": train_seconds(dpo_trainer),
            "logps": all_pair_logprobs(policy, eval_pairs, tok.pad_token_id, device),
            "answers": sample_and_score(policy, None, tok, few, cfg.ppo,
                                        seed=cfg.seed)["answer"].tolist()}


dpo_run = load_or_build(
    cfg, "trl-dpo",
    trl_run_settings(dpo_args, dpo_data, policy, eval=texts_digest(eval_pairs),
                     shown=few),
    train_dpo, f"TRL's DPO run ({len(dpo_data)} pairs), its held-out log-probs "
    "and answers", notebook="graduate")
dpo_log = dpo_run["log"]
dpo_log[["step", "loss", "rewards/accuracies", "rewards/margins"]].round(3)

# %% [markdown]
"""
Held out: how often does the implicit reward of the trained policy rank the
chosen answer first, on the same held-out pairs as 9.2? Before training the
policy *is* the reference: every margin is 0, every pair a tie, counted
wrong as TRL does, so the untrained policy scores 0. Chance, for a policy
that moved at random, is 0.5.
"""

# %%
import math

from rlhf_lessons.measure.evaluate import wilson_ci
from rlhf_lessons.train.dpo import LEARNED_LOSS
from rlhf_lessons.course.artefacts import weights_digest
from rlhf_lessons.train.trl_bridge import implicit_reward_accuracy

# the reference never trains: its log-probs of these pairs are kept in outputs/
ref_lp = load_or_build(cfg, "ref-logprobs",
                       {"weights": weights_digest(ref_policy),
                        "rows": [int(i) for i in ev_rows]},
                       lambda: all_pair_logprobs(ref_policy, eval_pairs,
                                                 tok.pad_token_id, device),
                       f"the reference's log-probs of the {len(eval_pairs)} "
                       "held-out pairs", notebook="graduate")
dpo_acc = implicit_reward_accuracy(policy, ref_policy, eval_pairs, gc.dpo_beta,
                                   tok.pad_token_id, device, ref_logps=ref_lp,
                                   policy_logps=dpo_run["logps"])
dpo_ci = wilson_ci(dpo_acc["k"], dpo_acc["n"])
# DPO's loss on the held-out pairs: log 2 before training (every margin 0),
# -log sigma(margin) per pair after it
loss_st = mean_with_error(dpo_acc["losses"], seed=cfg.seed)
dpo_learns = V.claim("TRL's DPO: held-out loss below log 2 (nats per pair)",
                     loss_st["mean"], (loss_st["ci_low"], loss_st["ci_high"]),
                     loss_st["n"], null=math.log(2), larger=False,
                     curve_moved=V.curve_moved(dpo_log["loss"], rises=False),
                     predicted=LEARNED_LOSS, predicted_name="target")
dpo_coin = V.claim("TRL's DPO: implicit reward beats a coin (held-out)",
                   dpo_acc["accuracy"], dpo_ci, dpo_acc["n"], null=0.5,
                   curve_moved=dpo_learns["verdict"] == V.HOLDS)
print(f"training loss, first -> last logged step: {dpo_log['loss'].iloc[0]:.3f} -> "
      f"{dpo_log['loss'].iloc[-1]:.3f}")
print(f"held-out DPO loss (learned at {LEARNED_LOSS}): log 2 = {math.log(2):.3f} -> "
      f"{loss_st['mean']:.3f} "
      f"[{loss_st['ci_low']:.3f}, {loss_st['ci_high']:.3f}] (n = {loss_st['n']}): "
      f"{dpo_learns['verdict']}")
print(f"implicit-reward accuracy: {dpo_acc['accuracy']:.3f} [{dpo_ci[0]:.3f}, "
      f"{dpo_ci[1]:.3f}] (n = {dpo_acc['n']}): {dpo_coin['verdict']}")

# %% [markdown]
"""
The accuracy claim rests on the training: it holds only when DPO's held-out
loss fell below log 2 too. An accuracy a little above 0.5 from a policy whose
loss did not fall is a policy that moved at random, by luck in our favour.

When the verdict says DPO did not learn, the log above says why: one epoch
of `gc.dpo_pairs` pairs, so every logged loss is on a batch the policy has
not trained on yet, and a loss that wanders around log 2 (or climbs) means
the steps taught it nothing that carries to the next pairs. HH-RLHF's two
answers often differ in ways that even the course's judge, trained on every
train pair, ranks right only about six times in ten on these same held-out
pairs (9.2's table); a 4M-parameter policy learning from a hundred pairs
gets less still. Notebook 07 runs the
course's own DPO on more pairs and reaches the same verdict on held-out
pairs: DPO's loss is the place to look before trusting its accuracy.
"""

# %% [markdown]
"""
What did DPO change in the answers? Three held-out prompts, the SFT policy
(the reference) and the DPO policy, sampled with the same seed:
"""

# %%
was = sample_and_score(ref_policy, None, tok, few, cfg.ppo, seed=cfg.seed)
pd.DataFrame({"prompt": [tail(p, 60) for p in few],
              "SFT": was["answer"].str[:90],
              "after DPO": [a[:90] for a in dpo_run["answers"]]})

# %% [markdown]
"""
## 9.4 TRL's GRPOTrainer: does the judge's reward rise?

GRPO (notebook 07) samples a **group** of answers per prompt, scores each,
and uses the answer's score minus its group's mean, over the group's spread,
as its advantage: no value model. TRL calls each reward as
`reward_fn(prompts, completions, **kw) -> list[float]` and sums them. We give
it two: the course's judge, wrapped, and a rule anyone can check (a clean,
finished, short turn).
"""

# %%
from rlhf_lessons.course.artefacts import judge_reward_fn
from rlhf_lessons.train.trl_bridge import rule_reward, trl_reward

judge_fn = trl_reward(judge_reward_fn(judge, judge_tok, max_len, device),
                      "judge")
demo = ["Sure, here is a simple recipe.", "Human: and then"]
hello = "\n\nHuman: Hi\n\nAssistant:"
print("judge:", [round(x, 3) for x in judge_fn([hello] * 2, demo)])
print("rule: ", rule_reward([hello] * 2, demo))

# %% [markdown]
"""
Prompts: single-turn ones (as in notebook 04), from the train split for
training and held out for measuring, stratified and seeded:
"""

# %%
def single_turn(ds, n, seed):
    ok = [i for i, p in enumerate(ds["prompt"]) if p.count("Human:") == 1
          and len(tok(p)["input_ids"]) <= cfg.ppo.max_prompt_tokens]
    pick = stratified_sample([ds[i]["subset"] for i in ok], n, seed)
    return [ok[j] for j in pick]


grpo_train = single_turn(train_ds, gc.grpo_steps * gc.grpo_batch, cfg.seed)
grpo_eval = single_turn(eval_ds, gc.n_eval_prompts, cfg.seed)
eval_prompts = [eval_ds[i]["prompt"] for i in grpo_eval]
count = collections.Counter(eval_ds[i]["subset"] for i in grpo_eval)
print(f"{len(grpo_train)} train prompts; {len(eval_prompts)} held-out:",
      dict(sorted(count.items())))

# %% [markdown]
"""
Before training: one answer per held-out prompt from the SFT policy, scored
by the judge and by the rule (the same seed later for the trained policy).
"""

# %%
import dataclasses

gen = dataclasses.replace(cfg.ppo, max_new_tokens=gc.grpo_max_new_tokens)
grpo_policy, _ = load_policy(cfg, "sft", device)
score = judge_reward_fn(judge, judge_tok, max_len, device)
before = sample_and_score(grpo_policy, score, tok, eval_prompts, gen,
                          seed=cfg.seed)
before["rule"] = rule_reward(eval_prompts, list(before["answer"]))
print(f"before: judge {before['score'].mean():+.3f}, "
      f"rule {before['rule'].mean():.3f}")
# power before training: a paired difference spreads about sqrt(2) answers' std
print(V.power_line("judge rise", len(before),
                   V.min_detectable_mean(2 ** 0.5 * before["score"].std(), len(before))))

# %%
from trl import GRPOConfig, GRPOTrainer

grpo_args = GRPOConfig(
    **common_args(run_dir / "trl-grpo", cfg.seed, on_cpu),
    num_generations=gc.grpo_generations,
    per_device_train_batch_size=gc.grpo_batch, max_steps=gc.grpo_steps,
    max_completion_length=gc.grpo_max_new_tokens,
    learning_rate=gc.grpo_lr, temperature=cfg.ppo.temperature)
tok.padding_side = "left"  # generation appends on the right
grpo_trainer = GRPOTrainer(
    model=grpo_policy, reward_funcs=[judge_fn, rule_reward], args=grpo_args,
    processing_class=tok, train_dataset=Dataset.from_list(
        [{"prompt": train_ds[i]["prompt"]} for i in grpo_train]))
drop_printing(grpo_trainer, "GRPOTrainer")
grpo_trainer.train()
tok.padding_side = "right"
grpo_log = log_history(grpo_trainer)
cols = ["step", "rewards/judge/mean", "rewards/rule_reward/mean", "reward",
        "frac_reward_zero_std", "completions/mean_length"]
grpo_log[cols].round(3)

# %%
from rlhf_lessons.course.plots import plot_metrics

plot_metrics(grpo_log, ["rewards/judge/mean", "rewards/rule_reward/mean",
                        "completions/mean_length"]);

# %% [markdown]
"""
After training, on the same held-out prompts with the same seed: did the
judge's score and the rule's score rise? (Paired by prompt, with bootstrap
95% intervals.)
"""

# %%
grpo_policy.eval()
after = sample_and_score(grpo_policy, score, tok, eval_prompts, gen,
                         seed=cfg.seed)
after["rule"] = rule_reward(eval_prompts, list(after["answer"]))
rise = {k: mean_with_error(after[c] - before[c])
        for k, c in [("judge", "score"), ("rule", "rule")]}
# both claims rest on the run: the judge's training reward must have risen
grpo_moved = V.curve_moved(grpo_log["rewards/judge/mean"])
grpo_claims = {k: V.claim(f"TRL's GRPO raises the {k}'s score (held-out prompts)",
                          r["mean"], (r["ci_low"], r["ci_high"]), r["n"],
                          curve_moved=grpo_moved)
               for k, r in rise.items()}
for k, r in rise.items():
    print(f"{k}: {r['mean']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] "
          f"(n = {r['n']}): {grpo_claims[k]['verdict']}")

# %%
SHOW = 3
safe = [i for i, j in enumerate(grpo_eval)
        if SHOW_ALL or eval_ds[j]["subset"].startswith("helpful")][:SHOW]
pd.DataFrame({"prompt": [eval_prompts[i][-70:] for i in safe],
              "before": [before["answer"][i][:90] for i in safe],
              "after": [after["answer"][i][:90] for i in safe]})

# %% [markdown]
"""
## 9.5 Reading a TRL log: which of our names is which?

The course logs with TRL-style keys where it can. Where the names differ,
this table is the dictionary (TRL 1.16's keys):
"""

# %%
from rlhf_lessons.train.trl_bridge import metric_names

names = metric_names()
names

# %% [markdown]
"""
Does every TRL key in that table appear in the logs of this notebook's
three runs (a key TRL renamed would be missing)? `kl` is left out: GRPO logs
it only with `beta > 0`.
"""

# %%
logged = set(rm_log) | set(dpo_log) | set(grpo_log)
always = names[~names["meaning"].str.contains("only when")]
keys = [k.strip().replace("<fn>", "judge")
        for cell in always["TRL"] for k in cell.split(",")]
missing = [k for k in keys if k not in logged]
print(f"{len(keys) - len(missing)} of {len(keys)} TRL keys seen:",
      "holds" if not missing else f"does not hold, missing {missing}")

# %% [markdown]
r"""
## 9.6 Many GPUs: what does accelerate launch change?

Nothing in the training code. `accelerate launch` starts one process per GPU
and the trainers split each batch between them; a config file says how.
`scripts/train_trl_gpt2.py` runs the recipe of 9.2-9.4 on the real `gpt2`
(124M parameters) and the Hub's full HH-RLHF (160,800 train pairs):

```bash
# data parallel (DDP): a whole copy of the model on each GPU
accelerate launch --config_file configs/accelerate_multi_gpu.yaml \
    scripts/train_trl_gpt2.py --stage all
# DeepSpeed ZeRO-2: optimizer states and gradients sharded across GPUs
accelerate launch --config_file configs/accelerate_zero2.yaml \
    scripts/train_trl_gpt2.py --stage all
# the same code path on this laptop, bundled data, a tiny model, seconds
python scripts/train_trl_gpt2.py --smoke
```

Offline, the script stops at once and says why.
"""

# %% [markdown]
"""
What does sharding save? Mixed-precision Adam keeps about 16 bytes per
parameter: 2 (bf16 weights) + 2 (bf16 gradients) + 12 (fp32 master weights,
momentum and variance) (Rajbhandari et al. 2020, the ZeRO paper). ZeRO-2
keeps the weights whole and splits the other 14 bytes across the $N$ GPUs
(activations come on top):
"""

# %%
def per_gpu_gb(n_params, n_gpus, stage):
    """Model states per GPU in GB: DDP (stage 0), ZeRO-1, ZeRO-2, ZeRO-3."""
    w, g, opt = 2 * n_params, 2 * n_params, 12 * n_params
    split = {0: (w + g + opt), 1: w + g + opt / n_gpus,
             2: w + (g + opt) / n_gpus, 3: (w + g + opt) / n_gpus}
    return split[stage] / 1e9


rows = [{"model": name, "DDP": per_gpu_gb(n, 8, 0),
         "ZeRO-2": per_gpu_gb(n, 8, 2), "ZeRO-3": per_gpu_gb(n, 8, 3)}
        for name, n in [("gpt2", 124e6), ("7B", 7e9), ("70B", 70e9)]]
pd.DataFrame(rows).set_index("model").round(2)  # GB per GPU, 8 GPUs

# %% [markdown]
"""
## 9.7 Where do OpenRLHF and verl take over?

TRL keeps every model of a run in the same processes. For PPO or GRPO on
models of many billions of parameters, two projects split the work
differently, because generating the answers, not the gradient step, takes
most of an RLHF step (OpenRLHF reports about 80-90%, its own figure):

- **TRL**: `accelerate` starts one process per GPU, each holding every
  model; DDP, DeepSpeed ZeRO or FSDP shard them; answers come from
  `generate` (or a vLLM server). Reward, DPO, GRPO, RLOO and more.
- **OpenRLHF**: **Ray** places the actor, critic, reward and reference
  models on separate GPUs; **vLLM** engines generate; DeepSpeed **ZeRO-3**
  trains. PPO, GRPO, RLOO, REINFORCE++, DPO. Built for 70B-parameter runs.
- **verl** (the open version of the HybridFlow paper): a Ray controller,
  **FSDP** or **Megatron-LM** to train, **vLLM** or **SGLang** for the
  rollouts, the weights resharded between the two. PPO, GRPO, RLOO, DAPO.

The data formats, the losses and the log names are the ones you now know.
"""

# %% [markdown]
"""
## Check your understanding

1. TRL kept fewer pairs than it was given in some runs. Which pairs does it
   drop, and how does the course's trainer treat the same pairs?
2. The DPO implicit-reward accuracy of an untrained policy is 0, not 0.5.
   Why?
3. `frac_reward_zero_std` is the share of GRPO groups whose answers all got
   the same reward. Why does such a group teach the policy nothing?
4. With 8 GPUs, about how much memory per GPU does ZeRO-2 save for `gpt2`,
   and why does it save nothing on the weights themselves?

## ✏️ Try it

- Train TRL's reward model on the **conversational** rows (the chat
  template of 9.1 is set) and check that the accuracy is unchanged.
- Give GRPO the rule reward alone, then the judge alone: which one moves
  `completions/mean_length`?
- Set `beta=0.04` in `GRPOConfig`: a `kl` column appears in the log.
- Run `python scripts/train_trl_gpt2.py --smoke` in a terminal.

## Reading list

- TRL documentation: the `RewardTrainer`, `DPOTrainer` and `GRPOTrainer`
  pages and "Dataset formats" (huggingface.co/docs/trl).
- Rajbhandari et al. 2020, *ZeRO* (arXiv 1910.02054): 16 bytes per
  parameter for mixed-precision Adam, and the three stages.
- Hu et al., *OpenRLHF* (arXiv 2405.11143): Ray + vLLM + ZeRO-3.
- Sheng et al. 2024, *HybridFlow* (arXiv 2409.19256), the paper behind verl.
- Shao et al. 2024, *DeepSeekMath* (arXiv 2402.03300): GRPO.
"""

# %% [markdown]
"""
## What this notebook showed

Each claim with its number, 95% interval, n and the verdict of the course's
one rule (`rlhf_lessons.measure.verdicts`); a claim about a trained model
also needs its training curve to have moved the right way.
"""

# %%
claims = [rm_claim, dpo_learns, dpo_coin, *grpo_claims.values()]
V.claims_table(claims)

# %%
from rlhf_lessons.course.artefacts import update_metrics

rm_eval = acc["TRL RewardTrainer"]
metrics = update_metrics(
    "09_graduate_to_trl", cfg, wall_s=round(time.time() - t0, 1),
    **{f"{k}_version": v for k, v in versions.items()},
    trl_rm_accuracy=rm_eval["accuracy"], trl_rm_ci95=rm_eval["ci95"],
    trl_rm_n=rm_eval["n"], trl_rm_train_pairs=len(rm_trainer.train_dataset),
    judge_accuracy=acc["course judge (03)"]["accuracy"],
    judge_ci95=acc["course judge (03)"]["ci95"],
    dpo_implicit_accuracy=dpo_acc["accuracy"], dpo_ci95=dpo_ci,
    dpo_n=dpo_acc["n"],
    grpo_judge_before=float(before["score"].mean()),
    grpo_judge_after=float(after["score"].mean()),
    grpo_rule_before=float(before["rule"].mean()),
    grpo_rule_after=float(after["rule"].mean()),
    grpo_n=len(eval_prompts),
    dpo_loss_start=round(math.log(2), 4), dpo_loss_end=round(loss_st["mean"], 4),
    dpo_loss_end_ci95=[round(loss_st["ci_low"], 4), round(loss_st["ci_high"], 4)],
    claims=claims)
pd.Series({k: v for k, v in metrics.items() if isinstance(v, float)},
          name="metrics.json").round(3).to_frame()
