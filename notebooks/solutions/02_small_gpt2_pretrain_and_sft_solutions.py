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
# 02 · Solutions

Each exercise of notebook 02, solved and checked, then short answers to the
questions and the "Try it" prompt. The cells tagged `solution` are the ones
`make run` puts in place of the lesson's stubs (same `ex-...` tag).
"""

# %%
from rlhf_lessons.course import checks

# %% [markdown]
"""
## Exercise 2.3: `next_token_loss`

*Explain:* each prediction needs a next token to be scored against; the last
position has none, and the first token has nothing before it to be predicted
from. So a text of T tokens gives T − 1 predictions.
"""


# %% tags=["solution", "ex-next-token-loss"]
import torch.nn.functional as F


def next_token_loss(logits, ids):
    V = logits.size(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, V),  # t predicts t+1
                           ids[:, 1:].reshape(-1))


# %%
checks.check_next_token_loss(next_token_loss)

# %% [markdown]
"""
## Exercise 2.7: `answer_mask`

*Extend:* on a real batch `answer_mask(...)` equals `labels != -100`: the
labels mark the same answer tokens (EOS included) and the same padding.
"""


# %% tags=["solution", "ex-sft-loss-mask"]
import torch


def answer_mask(prompt_lengths, total_lengths, T):
    pos = torch.arange(T)[None, :]
    return (pos >= prompt_lengths[:, None]) & (pos < total_lengths[:, None])


# %%
checks.check_sft_loss_mask(answer_mask)

# %% [markdown]
r"""
## Check your understanding

1. A uniform guess gives every token probability $1/V$, so each loss term is
   $-\log(1/V) = \log V$; the perplexity is $e^{\log V} = V$ (4,096 for the
   course's tokenizer).
2. To write the user's side too: to continue a conversation by inventing the
   next "Human:" turn, and it would spend capacity imitating prompts instead
   of answers.
3. The **EOS rate** (how many answers end with EOS within the token budget):
   it should be clearly higher after SFT than before.
4. The embedding and the output layer have `vocab × width` weights each, and
   the output softmax costs `vocab × width` per token: 12× fewer with 4,096
   tokens. (Each token covers less text, which costs back a little.)
5. The **rejected** answer, and so the *comparison*: SFT only imitates one
   answer per prompt and cannot learn "this one is better than that one".

## Try it: what to expect

At temperature 0.2 the answers are repetitive and safe, often the same
phrase again; at 1.2 they are varied but drift off topic and into broken
text. Most raters prefer something in between (the course samples at 0.7).
A few seconds per answer on a CPU.
"""
