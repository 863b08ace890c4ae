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
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
"""
# 01 · Browse the preference data

RLHF starts with people, not models: people compared two answers and said which
one is better. This notebook opens that data and looks at it closely, before
any model learns from it.

**You will:**
- explain why RLHF collects *comparisons* instead of written answers;
- browse Anthropic's HH-RLHF pairs: the shared history, the chosen and the
  rejected answer;
- measure what raters seem to reward: length, refusals, hedges,
  confident words;
- know the course's train/eval split, and why the eval part is
  never trained on;
- tell instruction-tuning data (Dolly) from preference data (HH-RLHF).

**Run time:** under a minute on a CPU (a few seconds with
`RLHF_LESSONS_FAST=1`). No GPU needed. Nothing is trained here.

**Instructor's path (50 minutes):** 1.1-1.2 (10 min), 1.3 the pair browser,
live (10 min), 1.4.2-1.4.3 lengths and the length bias (15 min), 1.4.5
phrases (10 min), 1.5 the split (5 min). 1.4.4, 1.6 and 1.7 (Dolly) are
reading. No live training.

⚠️ **Content note:** `harmless-base` holds red-team conversations, some of
them offensive. Every display below starts on the helpful subsets; set
`SHOW_ALL = True` in the next cell (or tick the browser's box) to see them
all. Every count and plot uses all four subsets.

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

cfg = LessonConfig.from_env()
device = get_device(cfg)
seed_everything(cfg.seed)
SHOW_ALL = False  # True: displays include harmless-base (red-team) text
print("preset:", cfg.preset, "| data source:", cfg.source)

# %% [markdown]
"""
## 1.1 Why compare two answers?

*Instruction tuning* (SFT, notebook 02) teaches a model from **one written
answer per prompt**: "here is a prompt, copy this answer".

- Writing a good answer for every prompt is slow and costly.
- Many prompts have **no single right answer**. "Tell me a joke" has thousands
  of good answers; which one should the model copy?

So RLHF asks an easier question. Show a person **two** answers to the same
prompt and let them pick the better one. Picking is fast, and "A is better than
B" is meaningful even when no answer is perfect.

A judge model (notebook 03) learns to predict those picks; the policy then
learns to please the judge (notebook 04).
"""

# %% [markdown]
"""
## 1.2 HH-RLHF: four subsets

Anthropic's *Helpful and Harmless* data (Bai et al. 2022, MIT licence) has four
subsets. The course bundles their **test files**, so everything runs offline.

What the raters did in each subset:

- `harmless-base`: tried to make the assistant say something harmful, then
  picked the **less harmful** answer;
- `helpful-base`: asked for help, picked the **more helpful** answer (early
  models);
- `helpful-online`: the same, with answers from models trained on earlier
  rounds;
- `helpful-rejection-sampled`: the same, with answers picked by best-of-n
  from a judge.

Each row is two whole conversations that share their history and differ only in
the last assistant turn.

⚠️ `harmless-base` comes from red-teaming: people *tried* to get harmful
answers, so some prompts and rejected answers are offensive. The package splits
each row into the shared `prompt` and the two final answers.
"""

# %%
from rlhf_lessons.core import data

ds = data.load_all_hh("all", source=cfg.source,
                      max_rows_per_subset=cfg.max_rows_per_subset)
print(ds)

# %% [markdown]
r"""
This is how one row looks on disk: a transcript with `\n\nHuman:` and
`\n\nAssistant:` markers (here the first `helpful-base` row, shortened).
"""

# %%
first = list(ds["subset"]).index("helpful-base")
print(repr(ds[first]["chosen"][:300]))

# %% [markdown]
r"""
✏️ **Exercise 1.2 (implement).** Write `split_pair(chosen, rejected)`: from
the two transcripts of a row, return `(prompt, chosen_answer,
rejected_answer)`, where the prompt is the history both share, up to and
including its last `"\n\nAssistant:"`. *Explain:* why not simply cut
each transcript at its own last `"\n\nAssistant:"`?
"""


# %% tags=["exercise", "ex-split-pair"]
def split_pair(chosen, rejected):
    raise NotImplementedError(
        "✏️ Exercise: write split_pair, then re-run this cell and the check "
        "below")


# %%
from rlhf_lessons.course import checks

checks.check_split_pair(split_pair)
prompt, a, b = split_pair(ds[first]["chosen"], ds[first]["rejected"])
print(repr(prompt[-60:]), "|", repr(a[:60]), "|", repr(b[:60]))

# %% [markdown]
r"""
<details><summary>Hint</summary>

Walk both strings while their characters agree: that is the shared part. Cut
it back to its last `"\n\nAssistant:"` (`str.rfind(marker, 0, k)`),
because the two answers may start with the same words. The answers are what
follows, stripped.
</details>
"""

# %% [markdown]
"""
`to_dataframe` gives one row per pair, with the **final answers** in `chosen`
and `rejected` and their lengths. Pandas is the easiest way to count things.
"""

# %%
import pandas as pd

pd.set_option("display.max_colwidth", 60)
df = data.to_dataframe(ds)
n_pairs = df.groupby("subset").size()
print("pairs per subset:", n_pairs.to_dict())
from rlhf_lessons.course import widgets

shown = widgets.safe_pairs(df, SHOW_ALL)  # helpful-* only unless SHOW_ALL
first_rows = shown.groupby("subset").head(1)
first_rows[["subset", "n_turns", "chosen", "rejected"]]

# %% [markdown]
"""
## 1.3 The pair browser

The history is shown once; the two final answers sit side by side, and the
words where they differ are highlighted. Here is one pair that mentions a joke
(when there is one among the rows shown):
"""

# %%
from IPython.display import HTML

jokes = widgets.filter_pairs(shown, "all", "joke")
print(len(jokes), "pairs mention 'joke'",
      "" if SHOW_ALL else "(helpful subsets; SHOW_ALL = True for all)")
HTML(widgets.render_pair_html(shown, "all", 0, query="joke"))

# %% [markdown]
"""
### Explore

Pick a subset, slide through the pairs, or search for a word (`recipe`,
`poem`, `sorry`). For each pair, ask yourself: would *you* have chosen the
same answer? How often is the difference small? The browser opens on
helpful-base; tick "show red-team pairs" for harmless-base (⚠️ offensive
text).
"""

# %%
widgets.make_pair_browser(df, show_all=SHOW_ALL)

# %% [markdown]
"""
## 1.4 What do the raters reward?

Now let's count, with plots. Everything below is computed from the rows loaded
above.

### 1.4.1 Turns per conversation

A *turn* is one message. Two turns = one question and its answer (the final
answer counts as a turn).
"""

# %%
from rlhf_lessons.course import plots

share_single = (df["n_turns"] == 2).mean()
print(f"single exchange (2 turns): {share_single:.0%} of pairs; "
      f"median {df['n_turns'].median():.0f} turns, max {df['n_turns'].max()}")
ax = plots.plot_turns_histogram(df["n_turns"])

# %% [markdown]
"""
### 1.4.2 Answer lengths, chosen vs rejected

Box plots show the middle half of the answers (the box) and the median (the
line). The y axis is logarithmic: answers run from one word to whole essays.
"""

# %%
ax = plots.plot_answer_lengths(df, unit="chars")

# %%
medians = df.groupby("subset")[["chosen_chars", "rejected_chars"]].median()
medians

# %% [markdown]
"""
### 1.4.3 The length bias

A lazy judge could always pick **the longer answer**. How often would it agree
with the humans? Ties (equal length, e.g. identical answers) are left out and
counted.
"""

# %%
from rlhf_lessons.measure import analysis

longer = analysis.longer_wins_rate(df, unit="chars")
longer

# %% [markdown]
"""
✏️ **Exercise 1.4.3 (implement).** Write `longer_wins(chosen_len,
rejected_len)`: given two arrays of answer lengths, return the share of pairs
whose chosen answer is the longer one, leaving ties out (as the table does).
*Extend:* what would counting ties as losses do to the rate?
"""


# %% tags=["exercise", "ex-longer-wins"]
def longer_wins(chosen_len, rejected_len):
    raise NotImplementedError(
        "✏️ Exercise: write longer_wins, then re-run this cell and the check "
        "below")


# %%
checks.check_longer_wins_rate(longer_wins)
c_len, r_len = analysis.answer_lengths(df, "chars")
print(f"yours {longer_wins(c_len.to_numpy(), r_len.to_numpy()):.4f} | "
      f"table {longer.loc['overall', 'rate']:.4f}")

# %% [markdown]
"""
<details><summary>Hint</summary>

`chosen_len > rejected_len` is a bool array of wins, `chosen_len !=
rejected_len` one of decided pairs; the rate is the first count over the
second.
</details>
"""

# %%
ax = plots.plot_longer_wins(longer)

# %%
for subset, row in longer.iterrows():
    side = "longer" if row["rate"] > 0.5 else "shorter"
    best = max(row["rate"], 1 - row["rate"])
    print(f"{subset:26s} always picking the {side} answer "
          f"agrees with the raters {best:.1%} of the time")

# %% [markdown]
"""
Keep these numbers in mind. They are the **length baselines**: a judge model
must beat them, on the same pairs, before we can say it learned anything beyond
length. Where the longer answer wins more than half the time, a judge trained
on these pairs may learn to prefer longer answers, and a policy trained
against that judge could learn to simply write more. Overall the rate above
is close to a coin flip and its direction flips by subset; notebooks 03-05
measure whether the judge and the policy pick up a length preference anyway.
"""

# %% [markdown]
r"""
### 1.4.4 Words that separate chosen from rejected

For each word, count the answers that use it, on each side. The *log-odds*
$\log\frac{n_\text{chosen}+1}{n_\text{rejected}+1}$ is positive for words
more typical of chosen answers, negative for rejected ones. Rare words are
dropped (they give noisy ratios).
"""

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(1, 2, figsize=(11, 5), layout="constrained")
for ax, subset in zip(axes, ["harmless-base", "helpful-base"]):
    part = df[df["subset"] == subset]
    min_count = max(3, len(part) // 80)  # about 1% of the answers
    rates = analysis.word_rates(part, min_count=min_count)
    top = analysis.top_words(rates, n=10, by="log_odds")
    plots.plot_word_differences(top, ax=ax, title=subset)

# %% [markdown]
"""
Which side do apologies fall on? And web links? The table gives the log-odds of
a few words per subset (positive = more typical of **chosen** answers; empty =
the word never appears in the rows loaded).
"""

# %%
WATCH = ["sorry", "can't", "https", "www", "definitely", "maybe"]
rows = {}
for subset, part in df.groupby("subset"):
    rates = analysis.word_rates(part, min_count=1).set_index("word")
    rows[subset] = rates.reindex(WATCH)["log_odds"]
pd.DataFrame(rows).T.round(2)

# %% [markdown]
"""
### 1.4.5 Refusals, hedges and confident phrases

Words are noisy; short phrases say more. The package keeps three curated lists
(notebook 05 reuses them to catch a policy that games its judge):
"""

# %%
for name, phrases in analysis.PHRASE_GROUPS.items():
    print(f"{name:9s}", ", ".join(phrases))

# %%
phrases = analysis.phrase_rates(df)
ax = plots.plot_phrase_rates(phrases)

# %%
for _, r in phrases.iterrows():
    more = "chosen" if r["diff"] > 0 else "rejected"
    print(f"{r['subset']:26s} {r['group']:9s} chosen {r['chosen_rate']:5.1%}"
          f"  rejected {r['rejected_rate']:5.1%}  -> more in {more}")

# %%
for group in ("hedge", "confident"):
    g = phrases[phrases["group"] == group]
    up = int((g["diff"] > 0).sum())
    print(f"{group:9s}: more common among chosen answers in {up} of {len(g)} "
          f"subsets; largest gap {g['diff'].abs().max():.1%}")
conf = phrases[phrases["group"] == "confident"]
print("raters favour confident phrasing:", "holds" if (conf["diff"] > 0).all()
      else "does not hold on these data")

# %% [markdown]
"""
This is the first glimpse of what human raters reward, and it is not one thing.
Compare the refusal rates of `harmless-base` with those of the helpful subsets
above: where a refusal is more common among the chosen answers, the raters
rewarded saying no; where it is more common among the rejected ones, they
punished it. A judge trained on all four subsets has to learn both, from the
conversation alone. The two lines above say the same of hedges and confident
phrases: where raters do not consistently prefer them, a judge that pays for
confidence did not learn it from these labels (notebook 05 asks whether ours
does).
"""

# %% [markdown]
"""
### Explore

Type your own phrases, separated by commas, e.g. `great question`,
`as an AI`, `step 1`, `here's a`.
"""

# %%
widgets.make_phrase_explorer(df, "I'm sorry, I can't")

# %% [markdown]
"""
## 1.5 The train/eval split

Offline we only have the test files, so the course makes its own split, once,
by row number: **row *i* of each subset is eval when *i* % 10 == 0**, train
otherwise. It is deterministic and spreads the eval rows over the whole file.

**Nothing from the eval part is ever used to train anything**: not the
tokenizer, pretraining, SFT, the judge, or the PPO prompts. Every accuracy the
course reports is measured on eval pairs that no model has seen. Later
notebooks ask for `load_hh_rlhf(subset, "train")` or `"eval"`.
"""

# %%
df["split"] = df["row"].map(data.split_of_row)
sizes = df.groupby(["subset", "split"]).size().unstack()
sizes.loc["total"] = sizes.sum()
print(f"eval share: {(df['split'] == 'eval').mean():.1%} of the rows loaded")
sizes

# %% [markdown]
r"""
## 1.6 Odd rows: identical pairs and empty answers

Real data is messy. Two kinds of rows deserve a count:

- pairs where **chosen == rejected**: the rater had nothing to choose between.
  For the judge's loss $-\log\sigma(r_c - r_r)$ such a pair always costs
  $\log 2$ and its gradient is exactly zero: it teaches nothing.
- pairs with an **empty answer** on one side: a real choice between an answer
  and silence.

The loader keeps both (so counts match the source) and we count them here.
"""

# %%
identical = df[df["chosen"] == df["rejected"]]
empty = df[(df["chosen"] == "") | (df["rejected"] == "")]
print(len(identical), "pairs with chosen == rejected")
print(len(empty), "pairs with an empty answer")
pd.DataFrame({"identical": identical.groupby("subset").size(),
              "empty answer": empty.groupby("subset").size()}
             ).fillna(0).astype(int)

# %%
same = widgets.safe_pairs(identical, SHOW_ALL)
if len(same):
    page = widgets.render_pair_html(same, "all", 0)
else:
    page = "<p>No identical pair among the rows shown.</p>"
HTML(page)

# %% [markdown]
"""
## 1.7 Dolly: instruction data, for contrast

`databricks/databricks-dolly-15k` (CC BY-SA 3.0) was written by Databricks
employees. Each row has an `instruction`, an optional `context`, **one**
reference `response`, and a `category`. It lives only on the Hugging Face Hub;
offline, the course shows its schema instead.
"""

# %%
from IPython.display import display

dolly = data.load_dolly(source=cfg.source)
if dolly is None:
    display(pd.Series(data.DOLLY_SCHEMA, name="meaning").to_frame())
else:
    print(len(dolly), "rows")
    display(dolly.to_pandas().head(3))

# %% [markdown]
"""
Its eight categories are eight kinds of task. With the Hub, the next cell draws
a bar chart of rows per category; offline it lists the categories and what
each one asks for.
"""

# %%
TASKS = {
    "open_qa": "a question answered from general knowledge",
    "general_qa": "a broad question, open-ended answer",
    "classification": "sort items into given classes",
    "closed_qa": "answer from the given context only",
    "brainstorming": "list ideas",
    "information_extraction": "pull facts out of the context",
    "summarization": "summarise the context",
    "creative_writing": "a poem, story or letter",
}
if dolly is None:
    display(pd.Series({c: TASKS[c] for c in data.DOLLY_CATEGORIES},
                      name="the task").to_frame())
else:
    counts = dolly.to_pandas()["category"].value_counts()
    ax = plots.plot_dolly_categories(counts)

# %% [markdown]
"""
**Instruction data vs preference data.**

**Dolly** (instruction data):
- one row: instruction (+ context) → **one** response;
- trains: SFT: copy the response, token by token;
- the signal: "say this";
- cost per row: write a whole answer.

**HH-RLHF** (preference data):
- one row: history → **two** answers, one preferred;
- trains: the judge: score chosen above rejected;
- the signal: "this is better than that";
- cost per row: read two answers, click one.

A preference pair can also be used as instruction data, by keeping only the
chosen answer; notebook 02 does exactly that. The reverse is impossible: one
reference answer says nothing about which of two *other* answers is better.
"""

# %%
example = shown[shown["n_turns"] == 2].iloc[0]
question = data.prompt_history(example["prompt"])[0][1]
print("As instruction data (what SFT copies):")
print("  instruction:", question[:70])
print("  response:   ", example["chosen"][:70])
print("As preference data (what the judge learns from):")
print("  chosen:     ", example["chosen"][:70])
print("  rejected:   ", example["rejected"][:70])

# %% [markdown]
"""
## Check your understanding

1. Why is "Tell me a joke" hard to teach with instruction data, and easy to
   collect preferences for?
2. In your run, how often does "pick the longer answer" agree with the raters,
   overall and on `harmless-base`? What does this mean for a judge's accuracy?
3. Why can a refusal be rewarded in one subset and punished in another?
4. Why must no eval row be used to train the tokenizer, SFT, the judge or the
   PPO prompts?
5. What does a pair with chosen == rejected teach the judge?

✏️ **Try it**

- Rerun 1.4.3 with `unit="words"` instead of `"chars"`. Does the length bias
  change?
- In the phrase explorer, look for flattery (`great question`) or
  self-description (`as an AI`). Which side of the pairs uses it more?
- Browse `harmless-base` until you find a pair where you disagree with the
  rater. What would a judge trained on it learn?
"""

# %%
from rlhf_lessons.course.artefacts import update_metrics

rates = longer["rate"].drop("overall")
update_metrics(
    "01_browse_preference_data", cfg,
    wall_s=round(time.time() - t0, 2),
    n_pairs={s: int(n) for s, n in n_pairs.items()},
    n_pairs_total=int(len(df)),
    longer_wins_rate={s: round(float(r), 4) for s, r in rates.items()},
    longer_wins_rate_overall=round(float(longer.loc["overall", "rate"]), 4),
    n_length_ties=int(longer.loc["overall", "n_ties"]),
    n_identical_pairs=len(identical),
    n_empty_answer_pairs=len(empty),
)
