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
# 02 · A small GPT-2 of our own: pretraining, SFT and generation

RLHF starts from a model that can already write. Offline there are no
pretrained GPT-2 weights, and PPO on a random model only shuffles noise. So we
grow our own small GPT-2 in the two steps InstructGPT used before any RLHF:
**pretraining** (predict the next token) and **supervised fine-tuning**
(imitate good answers).

**You will:**
- compute the next-token loss by hand and see that it is what
  `model(labels=...)` returns;
- watch pretraining lower the loss, live, then load the copy we trained earlier
  with exactly the same code;
- see why SFT masks the prompt tokens, and what SFT changes in the answers;
- find the limit of SFT that motivates the judge of notebook 03.

**Run time:** about 2 minutes on a 2-core CPU (default preset); seconds in
the fast preset. A GPU is not needed. The optional section at the end (which
tokenizer?) adds about 10 seconds.

**Instructor's path (50 minutes):** 2.1 (5 min), 2.3 the loss by hand (10
min), 2.4 pretraining live and the shipped curve (10 min; live training
about 20 s on a 2-core laptop), 2.6 samples (5 min), 2.7 SFT masking and the
live SFT run (10 min; about 15 s live), 2.8-2.9 before/after and the limits
of SFT (10 min). The exercises and the optional section are homework.

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

RETRAIN = False  # True: re-run the live demos instead of loading outputs/
cfg = (LessonConfig.from_env(retrain=True) if RETRAIN
       else LessonConfig.from_env())
device = get_device(cfg)
seed_everything(cfg.seed)
mc = cfg.model
print(f"preset {cfg.preset} | model: {mc.n_layer} layers x {mc.n_embd} wide, "
      f"{mc.n_head} heads, context {mc.n_positions} tokens")

# %% [markdown]
"""
## 2.1 The pipeline, and where this notebook sits

| step | learns from | notebook |
|---|---|---|
| pretraining | raw text: predict the next token | **02** |
| supervised fine-tuning (SFT) | one reference answer per prompt | **02** |
| reward model ("the judge") | human choices between two answers | 03 |
| PPO | the judge's scores on the model's own answers | 04 |

Pretraining is the expensive, *reusable* part: every later step starts from it.
Our corpus is the **train split** of the bundled HH-RLHF conversations (the
eval split is never used for training anything).
"""

# %%
from rlhf_lessons.train.pretrain import corpus_texts

train_texts = corpus_texts("train", cfg.max_rows_per_subset)
eval_texts = corpus_texts("eval", cfg.max_rows_per_subset)
n_chars = sum(len(t) for t in train_texts)
print(f"train transcripts: {len(train_texts):,} ({n_chars / 1e6:.1f}M chars)")
print(f"eval transcripts:  {len(eval_texts):,} (held out)")
print(repr(train_texts[0][:300]))

# %% [markdown]
"""
## 2.2 The tokenizer

A language model reads **tokens**, not characters. The course model uses a
small byte-level BPE of its own: 4,096 tokens, trained (with the `tokenizers`
library) on the train text. (Why not GPT-2's 50,257? The optional section at
the end measures it.)
"""

# %%
from rlhf_lessons.course.artefacts import course_tokenizer

course_tok = course_tokenizer()
print(f"vocab {len(course_tok):,}:",
      course_tok.tokenize(" Sure, here's a simple recipe for pancakes."))

# %% [markdown]
r"""
## 2.3 Next-token prediction in a few cells

The whole pretraining objective: at each position, give the **true next token**
a high probability. The loss is the mean of

$$\ell_t = -\log p_\theta(x_{t+1} \mid x_{\le t})$$

Let's compute it by hand for one sentence, with the shipped pretrained model.
"""

# %%
import pandas as pd
import torch

from rlhf_lessons.course.artefacts import load_policy

pretrained, tok = load_policy(cfg, "pretrained", device)
text = "\n\nHuman: What is the capital of France?\n\nAssistant: Paris."
ids = torch.tensor([tok(text)["input_ids"]], device=device)
with torch.no_grad():
    logits = pretrained(input_ids=ids).logits  # (1, T, vocab)
print("ids:", tuple(ids.shape), "-> logits:", tuple(logits.shape))

# %%
import torch.nn.functional as F

logp = F.log_softmax(logits[0, :-1], dim=-1)  # position t predicts t+1
targets = ids[0, 1:]
per_token = -logp[torch.arange(len(targets)), targets]
by_hand = per_token.mean().item()
with torch.no_grad():
    by_hf = pretrained(input_ids=ids, labels=ids).loss.item()
print(f"loss by hand {by_hand:.4f} | model(labels=ids).loss {by_hf:.4f}")

# %% [markdown]
"""
✏️ **Exercise 2.3 (implement).** The cell above handles one sentence. Write
`next_token_loss(logits, ids)` for a batch: `logits (B, T, V)`, `ids (B, T)`;
return the mean loss over all `B × (T − 1)` predictions, one number.
*Explain:* why are there only `T − 1` predictions in a text of `T` tokens?
"""


# %% tags=["exercise", "ex-next-token-loss"]
def next_token_loss(logits, ids):
    raise NotImplementedError(
        "✏️ Exercise: write next_token_loss, then re-run this cell and the "
        "check below")


# %%
from rlhf_lessons.course import checks

checks.check_next_token_loss(next_token_loss)
print("on the sentence above:", round(next_token_loss(logits, ids).item(), 4))

# %% [markdown]
"""
<details><summary>Hint</summary>

Position t predicts token t+1: pair `logits[:, :-1]` with `ids[:, 1:]`, then
flatten both (`.reshape(-1, V)` and `.reshape(-1)`) for `F.cross_entropy`,
which applies log-softmax and takes the mean for you.
</details>
"""

# %%
pieces = tok.convert_ids_to_tokens(targets.tolist())
pd.DataFrame({"next token": pieces,
              "p(next)": per_token.neg().exp().cpu().numpy().round(3),
              "loss": per_token.cpu().numpy().round(2)}).tail(8)

# %% [markdown]
r"""
**Perplexity** is $e^{\text{loss}}$: the number of tokens the model is
"choosing between" on average. A uniform guess over 4,096 tokens has perplexity
4,096. The honest baseline is the **unigram** model: it knows how common each
token is and nothing about context.
"""

# %% [markdown]
r"""
## 2.4 Pretraining, live (a short demo)

`rlhf_lessons.train.pretrain` samples random 256-token windows from the
train text
and minimises the loss with AdamW, a warm-up and a cosine schedule. Here is a
short run from a *random* model, which starts near the loss of a
uniform guess, $\log 4096 \approx 8.3$. Does the loss fall in a few steps?
"""

# %%
import dataclasses
import math

from rlhf_lessons.course.artefacts import demo_dir, loaded_or_trained
from rlhf_lessons.train.pretrain import pretrain

steps = cfg.budget.pretrain_demo_steps
demo_cfg = dataclasses.replace(
    cfg, pretrain=dataclasses.replace(
        cfg.pretrain, steps=steps, batch_size=8, eval_every=steps,
        eval_windows=16, warmup_steps=max(1, steps // 5)))
run_dir, t_run = demo_dir(cfg, "pretrain_demo"), time.time()
done_before = (run_dir / "checkpoint.pt").exists()
demo = pretrain(demo_cfg, run_dir, tokenizer=course_tok, final_eval_windows=16)
loaded_or_trained("the pretraining demo", run_dir / "checkpoint.pt",
                  not done_before, time.time() - t_run);
demo_df = demo.metrics
start, end = demo_df["loss"].iloc[:3].mean(), demo_df["loss"].iloc[-3:].mean()
print(f"training loss, mean of the first 3 steps {start:.2f} -> last 3 "
      f"{end:.2f} (a uniform guess: {math.log(len(course_tok)):.2f})")
print("the loss falls:", "holds" if end < start else "does not hold here")

# %% [markdown]
"""
### Here is one we trained earlier, with exactly this code

`python scripts/ship.py pretrain` ran the same function for the full
schedule and saved the result to `data/models/course-gpt2` with a model card.
Its logged curve:
"""

# %%
from rlhf_lessons.course.artefacts import shipped_training_log
from rlhf_lessons.course.plots import plot_metrics

shipped = shipped_training_log("pretrained")
card = shipped["figures"]
full_df = pd.DataFrame(shipped.get("metrics", demo.metrics))
axes = plot_metrics(full_df, ["loss", "eval_loss"], smooth=20)
print(f"shipped run: {card['steps']} steps, {card['tokens_seen'] / 1e6:.1f}M "
      f"tokens in {card['wall_s']:.0f} s; held-out ppl {card['eval_ppl']:.1f} "
      f"(unigram {card['unigram_eval_ppl']:.0f})")

# %% [markdown]
"""
## 2.5 Held-out perplexity: pretrained model vs unigram

Both are scored on the **eval** transcripts, which no model has seen.
"""

# %%
from rlhf_lessons.course.artefacts import load_or_build, weights_digest
from rlhf_lessons.train.pretrain import encode_stream, stream_loss
from rlhf_lessons.train.pretrain import unigram_perplexity

train_stream = encode_stream(tok, train_texts)
eval_stream = encode_stream(tok, eval_texts)
unigram_ppl = unigram_perplexity(train_stream, eval_stream, len(tok))
n_win = cfg.pretrain.eval_windows
# kept in outputs/, keyed by the model's exact weights
pre_loss = load_or_build(
    cfg, "pretrain-eval",
    {"weights": weights_digest(pretrained), "windows": n_win},
    lambda: stream_loss(pretrained, eval_stream, cfg.pretrain.seq_len, device,
                        max_windows=n_win),
    f"the pretrained model's held-out loss ({n_win} windows)",
    notebook="pretrain")
pretrain_ppl = math.exp(pre_loss)
print(f"unigram ppl {unigram_ppl:.0f} | pretrained ppl {pretrain_ppl:.1f} | "
      f"{unigram_ppl / pretrain_ppl:.1f}x lower (on {n_win} windows)")

# %% [markdown]
"""
## 2.6 Samples from the pretrained model

We ask it to continue a few **held-out** prompts (from the helpful subsets).
A pretrained model has only learned what conversations *look like*: does it
stop after its answer, or run on and write the next "Human:" turn itself?
The line under the table counts both, for these few prompts.
"""

# %%
from rlhf_lessons.core.data import load_all_hh
from rlhf_lessons.core.generation import generate

eval_ds = load_all_hh("eval", max_rows_per_subset=cfg.max_rows_per_subset)
helpful = [i for i in range(len(eval_ds))
           if eval_ds[i]["subset"].startswith("helpful")]  # safe to project
short = sorted(helpful, key=lambda i: len(eval_ds[i]["prompt"]))
demo_prompts = [eval_ds[i]["prompt"] for i in short[100:700:150]]
seed_everything(cfg.seed)
before = generate(pretrained, tok, demo_prompts, cfg.budget.sft_new_tokens,
                  temperature=0.7, seed=cfg.seed)
pd.set_option("display.max_colwidth", 200)
pd.DataFrame({"prompt": [p[-80:] for p in demo_prompts],
              "pretrained answer": before.texts})

# %%
invented = sum("Human:" in t for t in before.texts)
print(f"{invented} of {len(before.texts)} answers invent a 'Human:' turn;",
      f"{int(before.finished.sum())} stop on their own (EOS) within",
      f"{cfg.budget.sft_new_tokens} tokens")

# %% [markdown]
"""
## 2.7 SFT: learn to answer, then stop

SFT shows the model `prompt + answer + EOS` and trains on the **answer tokens
only**. The prompt tokens get the label `-100`, which the loss skips:

- the model is not rewarded for writing the user's side of the conversation;
- the final **EOS** token teaches it to stop when the answer is done.

Offline our SFT data are the **chosen** answers of the HH-RLHF train split.
With the Hub, `rlhf_lessons.train.sft` uses Dolly's human-written answers
instead.
"""

# %%
from rlhf_lessons.train.sft import IGNORE, encode_example

train_ds = load_all_hh("train", max_rows_per_subset=cfg.max_rows_per_subset)
ex = encode_example(tok, train_ds[3]["prompt"], train_ds[3]["chosen_response"],
                    cfg.sft.max_len)
shown = pd.DataFrame({
    "token": tok.convert_ids_to_tokens(ex["input_ids"]),
    "in loss?": ["no (prompt)" if lab == IGNORE else "YES (answer)"
                 for lab in ex["labels"]]})
print(f"{ex['n_prompt']} prompt tokens masked,",
      f"{len(ex['labels']) - ex['n_prompt']} answer tokens trained")
shown.iloc[ex["n_prompt"] - 4: ex["n_prompt"] + 6]

# %%
import matplotlib.pyplot as plt
import numpy as np

mask_row = np.array([[lab != IGNORE for lab in ex["labels"]]], dtype=float)
fig, ax = plt.subplots(figsize=(8, 0.9))
ax.imshow(mask_row, aspect="auto", cmap="Greens", vmin=0, vmax=1)
ax.set_yticks([])
ax.set_xlabel("token position (dark = counts in the SFT loss)")
ax.set_title("Prompt tokens are masked; answer tokens and EOS are trained")
plt.show()

# %% [markdown]
"""
✏️ **Exercise 2.7 (implement).** In a right-padded batch, row *i* has
`prompt_lengths[i]` prompt tokens, then answer tokens up to
`total_lengths[i]`, then padding up to `T`. Write
`answer_mask(prompt_lengths, total_lengths, T)`: a `(B, T)` bool tensor, True
on the answer tokens (EOS included) only. *Extend:* the cell after the check
tests it on a real batch against `labels != -100`.
"""


# %% tags=["exercise", "ex-sft-loss-mask"]
def answer_mask(prompt_lengths, total_lengths, T):
    raise NotImplementedError(
        "✏️ Exercise: write answer_mask, then re-run this cell and the check "
        "below")


# %%
checks.check_sft_loss_mask(answer_mask)

# %% [markdown]
"""
<details><summary>Hint</summary>

Compare a row of positions `torch.arange(T)[None, :]` with the columns
`prompt_lengths[:, None]` and `total_lengths[:, None]`: answer tokens are at
or after the prompt's length and before the total length. `&` joins the two.
</details>
"""

# %%
from rlhf_lessons.train.sft import collate

exs = [encode_example(tok, train_ds[i]["prompt"],
                      train_ds[i]["chosen_response"], cfg.sft.max_len)
       for i in range(3)]
b = collate(exs, tok.pad_token_id)
p_len = torch.tensor([e["n_prompt"] for e in exs])
n_len = torch.tensor([len(e["input_ids"]) for e in exs])
mine = answer_mask(p_len, n_len, b["labels"].shape[1])
print("batch", tuple(b["labels"].shape), "| answer_mask == (labels != -100):",
      torch.equal(mine, b["labels"] != IGNORE))

# %% [markdown]
"""
### A short SFT run, live

The same loop as the shipped SFT model, for a few steps, starting from the
pretrained model (a fresh copy, so the model above stays as it was).
"""

# %%
import copy

from rlhf_lessons.train.sft import train_sft

sft_dir, t_run = demo_dir(cfg, "sft_demo"), time.time()
done_before = (sft_dir / "checkpoint.pt").exists()
demo_sft = train_sft(cfg, model=copy.deepcopy(pretrained), tokenizer=tok,
                     run_dir=sft_dir, max_steps=cfg.budget.sft_demo_steps)
loaded_or_trained("the SFT demo", sft_dir / "checkpoint.pt", not done_before,
                  time.time() - t_run);
sft_demo_df = demo_sft.metrics
print(f"answer-token loss: step 1 {sft_demo_df['loss'].iloc[0]:.2f}, "
      f"step {len(sft_demo_df)} {sft_demo_df['loss'].iloc[-1]:.2f} (one "
      "batch each: noisy; the shipped run's curve is below)")

# %% [markdown]
"""
### The SFT model we trained earlier (one epoch, same code)

The line "SFT data: kept ... examples" above is a choice worth seeing: SFT
trains only on chosen answers that **end within
`cfg.sft.max_answer_tokens` tokens** (64), because the policy of notebook 04
writes at most 32 tokens and must learn to stop. So the SFT model has only
seen short answers, about half of them: it learns to be brief, which matters
when notebooks 04 and 05 watch answer lengths.
"""

# %%
sft_model, _ = load_policy(cfg, "sft", device)
sft_log = shipped_training_log("sft")
sft_df = pd.DataFrame(sft_log.get("metrics", demo_sft.metrics))
axes = plot_metrics(sft_df, ["loss"], smooth=20)
axes[0].set_ylabel("answer-token loss")
fig_ = sft_log["figures"]
print(f"shipped SFT run: {fig_['steps']} steps on {fig_['examples']:,} short "
      f"answers, {fig_['wall_s']:.0f} s")

# %% [markdown]
"""
## 2.8 Before and after SFT

Same held-out prompts, same sampling seed. Then two numbers over many held-out
prompts: how often the answer **ends with EOS** within the token budget, and
the perplexity on held-out **answer** tokens (the thing SFT trains; scored on
eval answers that end within the same token budget as the SFT data).
"""

# %%
seed_everything(cfg.seed)
after = generate(sft_model, tok, demo_prompts, cfg.budget.sft_new_tokens,
                 temperature=0.7, seed=cfg.seed)
pd.DataFrame({"prompt": [p[-80:] for p in demo_prompts],
              "pretrained": before.texts, "after SFT": after.texts})

# %%
from rlhf_lessons.course.artefacts import load_or_build, weights_digest
from rlhf_lessons.measure.evaluate import wilson_ci
from rlhf_lessons.train.sft import evaluate_sft


def evaluate_both():
    return {"pretrained": evaluate_sft(cfg, pretrained, tok),
            "sft": evaluate_sft(cfg, sft_model, tok),
            "sft_stream_ppl": math.exp(stream_loss(
                sft_model, eval_stream, cfg.pretrain.seq_len, device, max_windows=n_win))}


# about a minute of sampling on 2 cores, so the result is kept in outputs/,
# keyed by the two models' exact weights and these budgets
ev = load_or_build(cfg, "sft-eval",
                   {"weights": [weights_digest(pretrained), weights_digest(sft_model)],
                    "prompts": cfg.budget.sft_eval_prompts,
                    "tokens": cfg.budget.sft_new_tokens, "windows": n_win},
                   evaluate_both,
                   "the EOS rates and perplexities of both models",
                   notebook="pretrain")
ev_pre, ev_sft, sft_stream_ppl = ev["pretrained"], ev["sft"], ev["sft_stream_ppl"]
compare = pd.DataFrame({
    "EOS rate": [ev_pre["eos_rate"], ev_sft["eos_rate"]],
    "answer ppl": [ev_pre["answer_ppl"], ev_sft["answer_ppl"]],
    "transcript ppl": [pretrain_ppl, sft_stream_ppl]},
    index=["pretrained", "SFT"]).round(3)
n_eos = ev_sft["n_eos_prompts"]
for name, ev in (("pretrained", ev_pre), ("SFT", ev_sft)):
    lo, hi = wilson_ci(round(ev["eos_rate"] * n_eos), n_eos)
    print(f"{name:>10} EOS rate {ev['eos_rate']:.2f} (95% CI {lo:.2f}-"
          f"{hi:.2f}, n = {n_eos} held-out prompts, "
          f"{cfg.budget.sft_new_tokens} tokens)")
compare

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3), layout="constrained")
compare["EOS rate"].plot.bar(ax=axes[0], color=["#7F7F7F", "#0072B2"])
axes[0].set_title("answers that stop (EOS)")
compare["answer ppl"].plot.bar(ax=axes[1], color=["#7F7F7F", "#0072B2"])
axes[1].set_title("held-out answer perplexity")
for ax in axes:
    ax.tick_params(axis="x", rotation=0)
plt.show()

# %% [markdown]
"""
Read the table, not the hope: the EOS rate and answer perplexity above are this
run's numbers. SFT is trained to stop after its answer, so its EOS rate should
be the higher one; if it is not in your run, that is worth a question.

The **transcript** perplexity scores every token of held-out conversations,
the human turns and long answers included. SFT trained on none of those (only
short answers), so it may get worse there: a small forgetting, the price of
specialising. The cell below says whether it did in this run.
"""

# %%
stop = (ev_sft["eos_rate"] - ev_pre["eos_rate"]) * n_eos
print(f"SFT stops more often: {'holds' if stop > 0 else 'does not hold'}; "
      f"transcript ppl {pretrain_ppl:.1f} -> {sft_stream_ppl:.1f} "
      f"({'worse' if sft_stream_ppl > pretrain_ppl else 'better'} after SFT)")

# %% [markdown]
"""
## 2.9 The limits of SFT

SFT needs **one written reference answer per prompt**, and imitates it token by
token. Three problems:

1. Writing good answers is slow and costly: people must write every one.
2. Many prompts have no single right answer ("tell me a joke"). SFT pushes the
   model toward one particular joke.
3. It learns nothing from *comparisons*. Each HH-RLHF row says "this answer is
   better than that one", and SFT throws the rejected half away.
"""

# %%
row = train_ds[3]
print("PROMPT  ...", row["prompt"][-150:])
print("\nCHOSEN  :", row["chosen_response"][:200])
print("\nREJECTED:", row["rejected_response"][:200])

# %% [markdown]
"""
People find it much easier to **compare** two answers than to write a perfect
one. Notebook 03 trains a **judge** on exactly those comparisons; notebook 04
lets the judge steer this SFT model.
"""

# %% [markdown]
"""
### Explore: generate with your own prompt

Change the prompt, the temperature (higher = more random) and the number of new
tokens. Greedy decoding is temperature 0.
"""

# %%
from rlhf_lessons.course.widgets import make_generation_widget

make_generation_widget(sft_model, tok,
                       max_new_tokens=cfg.budget.sft_new_tokens)

# %% [markdown]
r"""
## Check your understanding

1. Why is the loss of a uniform guess over the vocabulary equal to
   $\log(\text{vocab size})$, and what perplexity does that give?
2. The SFT loss skips the prompt tokens. What would the model learn if
   it did not?
3. Which number in section 2.8 tells you that SFT taught the model to stop?
4. Why does a 4,096-token vocabulary train faster than GPT-2's 50,257 for the
   same model width?
5. Name one thing the HH-RLHF rows contain that SFT cannot use.

✏️ **Try it:** in the widget, ask the SFT model the same question at temperature
0.2 and 1.2. Which answers would you, as a rater, prefer, and why?
"""

# %% [markdown]
"""
## Optional: which tokenizer? A measured choice

*An engineering tangent: skip it in a lecture.*

A language model reads **tokens**, not characters. Two candidates:

- the real **GPT-2 BPE**: 50,257 tokens, authentic, bundled in `data/`;
- a **small byte-level BPE** of our own: 4,096 tokens, trained (with the
  `tokenizers` library) on the same train text.

For a tiny model the vocabulary is most of the cost: the output layer scores
*every* token at *every* position. We measure both sides of the trade:
characters per token (bigger is better) and training tokens per second.
"""

# %%
import numpy as np

from rlhf_lessons.core.models import load_gpt2_tokenizer

gpt2_tok = load_gpt2_tokenizer()
pick = np.random.default_rng(cfg.seed).choice(len(eval_texts), 200,
                                              replace=False)
sample = " ".join(eval_texts[i] for i in pick)  # 200 random transcripts
for name, tok in [("course BPE", course_tok), ("GPT-2 BPE", gpt2_tok)]:
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    ratio = len(sample) / len(ids)
    print(f"{name:10} vocab {len(tok):6,}: {ratio:.2f} chars/token")
print(course_tok.tokenize(" Sure, here's a simple recipe for pancakes."))

# %%
from rlhf_lessons.core.models import build_gpt2


def train_tokens_per_s(vocab_size, steps=2, batch=4):
    """Tokens/s of a few training steps of the preset's model size."""
    model = build_gpt2(vocab_size, cfg.model, 0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, vocab_size, (batch, cfg.pretrain.seq_len))
    x, mask = x.to(device), torch.ones_like(x, device=device)
    times = []
    for _ in range(steps + 1):  # the first step warms up and is not timed
        start = time.perf_counter()
        model(input_ids=x, attention_mask=mask, labels=x).loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - start)
    return x.numel() / (sum(times[1:]) / steps)


# %%
rows = []
for name, tok in [("course BPE", course_tok), ("GPT-2 BPE", gpt2_tok)]:
    ids = tok(sample, add_special_tokens=False)["input_ids"]
    chars_per_token = len(sample) / len(ids)
    tps = train_tokens_per_s(len(tok))
    rows.append({"tokenizer": name, "vocab": len(tok),
                 "chars/token": round(chars_per_token, 2),
                 "train tokens/s": round(tps),
                 "train chars/s": round(tps * chars_per_token)})
tok_table = pd.DataFrame(rows).set_index("tokenizer")
speedup = (tok_table["train chars/s"].iloc[0]
           / tok_table["train chars/s"].iloc[1])
print(f"the course BPE learns from {speedup:.1f}x more text per second")
tok_table

# %% [markdown]
"""
The GPT-2 tokenizer packs a few more characters into each token, but the course
BPE trains on far more *text* per CPU-second (the ratio above). On a laptop,
that wins: the course model uses the small BPE. (The gpu preset uses the real
GPT-2 and its tokenizer.)
"""

# %%
from rlhf_lessons.course.artefacts import update_metrics

metrics = update_metrics(
    "02_small_gpt2_pretrain_and_sft", cfg,
    wall_s=round(time.time() - t0, 1),
    pretrain_eval_ppl=round(pretrain_ppl, 2),
    sft_eval_ppl=round(sft_stream_ppl, 2),
    unigram_eval_ppl=round(unigram_ppl, 2),
    pretrain_answer_ppl=round(ev_pre["answer_ppl"], 2),
    sft_answer_ppl=round(ev_sft["answer_ppl"], 2),
    pretrain_eos_rate=round(ev_pre["eos_rate"], 4),
    sft_eos_rate=round(ev_sft["eos_rate"], 4),
    n_eos_prompts=n_eos,
    pretrain_tokens_per_s=card["tokens_per_s"],
    pretrain_wall_s=card["wall_s"],
    eval_windows=n_win,
    tokenizer_speedup=round(float(speedup), 2))
print({k: metrics[k] for k in ("pretrain_eval_ppl", "sft_eval_ppl",
                               "sft_eos_rate", "wall_s")})
