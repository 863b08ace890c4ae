"""Notebook 04 teaches the PPO maths inline; each inline function must agree with
the package's version (CONVENTIONS: "teach inline, then import").

Only the code cells that define the functions run (with ``torch`` in scope), never
the whole notebook. The tensors are tiny, hand-made, float64 and padded; the
padded positions hold junk, so a function that forgets the mask disagrees.
"""

from pathlib import Path

import jupytext
import pytest
import torch
from torch.testing import assert_close

from rlhf_lessons.course.runner import fill_exercises
from rlhf_lessons.train import ppo

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "04_ppo_with_the_judge.py"
SOLUTIONS = NOTEBOOK.parent / "solutions" / "04_ppo_with_the_judge_solutions.py"
NAMES = ("kl_k1", "kl_k3", "shape_rewards_inline", "gae_loop", "clipped_surrogate",
         "clipped_value_loss")

# Three answers of width 5; the middle one is padded after 2 tokens, the last after 4.
MASK = torch.tensor([[1, 1, 1, 1, 1],
                     [1, 1, 0, 0, 0],
                     [1, 1, 1, 1, 0]], dtype=torch.float64)
PAD = MASK == 0


def _padded(x: torch.Tensor, junk: float = 7.5) -> torch.Tensor:
    """x with junk written on the padded positions."""
    return torch.where(PAD, torch.full_like(x, junk), x)


def _rand(seed: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(MASK.shape, generator=g, dtype=torch.float64) * scale + shift


@pytest.fixture(scope="module")
def nb() -> dict:
    """The notebook's inline functions, by name."""
    lesson = jupytext.read(NOTEBOOK)  # its exercise stubs get their solutions
    fill_exercises(lesson, jupytext.read(SOLUTIONS))
    cells = [c.source for c in lesson.cells if c.cell_type == "code"]
    ns: dict = {"torch": torch}
    for name in NAMES:
        found = [src for src in cells if f"def {name}(" in src]
        assert len(found) == 1, (f"{NOTEBOOK.name}: {len(found)} code cells define "
                                 f"{name}(), expected exactly one")
    for i, src in enumerate(cells):
        if any(f"def {name}(" in src for name in NAMES):
            exec(compile(src, f"{NOTEBOOK.name}[code cell {i}]", "exec"), ns)
    return {name: ns[name] for name in NAMES}


# ---------------------------------------------------------------------------
# 4.3.3 KL estimators and shaped rewards
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("est", ["k1", "k3"])
def test_kl_estimators_match_package(nb, est):
    logprobs = _padded(-_rand(0).abs() - 0.1, junk=-3.0)
    ref_logprobs = _padded(-_rand(1).abs() - 0.1, junk=-0.5)
    ours = nb[f"kl_{est}"](logprobs, ref_logprobs)
    assert_close(ours, ppo.kl_per_token(logprobs, ref_logprobs, est))
    if est == "k1":
        assert (ours < 0).any(), "test data should make k1 negative somewhere"
    else:
        assert (ours >= 0).all(), "k3 is never negative"


@pytest.mark.parametrize("est", ["k1", "k3"])
def test_kl_is_zero_when_policy_is_reference(nb, est):
    logprobs = _padded(-_rand(2).abs() - 0.1, junk=-2.0)
    ours = nb[f"kl_{est}"](logprobs, logprobs.clone())
    assert_close(ours, torch.zeros_like(ours))
    assert_close(ours, ppo.kl_per_token(logprobs, logprobs.clone(), est))


def test_kl_by_hand(nb):
    lp = torch.log(torch.tensor([0.5, 0.25], dtype=torch.float64))
    ref = torch.log(torch.tensor([0.25, 0.5], dtype=torch.float64))
    log2 = torch.log(torch.tensor(2.0, dtype=torch.float64))
    assert_close(nb["kl_k1"](lp, ref), torch.stack([log2, -log2]))
    assert_close(nb["kl_k3"](lp, ref), torch.stack([log2 - 0.5, 1 - log2]))


@pytest.mark.parametrize("beta", [0.05, 0.5])
def test_shape_rewards_matches_package(nb, beta):
    scores = torch.tensor([1.5, -2.0, 0.25], dtype=torch.float64)
    kl = _padded(_rand(3, scale=0.3), junk=100.0)
    ours = nb["shape_rewards_inline"](scores, kl, MASK, beta)
    theirs, _ = ppo.shape_rewards(scores, kl, MASK, beta)
    assert_close(ours, theirs)
    # the middle row is padded after 2 tokens: its score sits at index 1, then zeros
    assert_close(ours[1, 1], -beta * kl[1, 1] + scores[1])
    assert_close(ours[PAD], torch.zeros_like(ours[PAD]))


def test_shape_rewards_with_zero_kl_is_the_score_alone(nb):
    scores = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    ours = nb["shape_rewards_inline"](scores, torch.zeros_like(MASK), MASK, 0.1)
    assert_close(ours, ppo.shape_rewards(scores, torch.zeros_like(MASK), MASK, 0.1)[0])
    assert_close(ours.sum(1), scores)


# ---------------------------------------------------------------------------
# 4.3.4 GAE
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.8), (1.0, 1.0)])
def test_gae_loop_matches_package(nb, gamma, lam):
    rewards = _padded(_rand(4), junk=50.0)
    values = _padded(_rand(5), junk=-50.0)
    ours = nb["gae_loop"](rewards, values, MASK, gamma, lam)
    theirs, _ = ppo.gae(rewards, values, MASK, gamma, lam)
    assert_close(ours, theirs)
    assert_close(ours[PAD], torch.zeros_like(ours[PAD]))


def test_gae_loop_by_hand(nb):
    r = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    ours = nb["gae_loop"](r, torch.zeros_like(r), torch.ones_like(r), 1.0, 0.5)
    assert_close(ours, torch.tensor([[0.25, 0.5, 1.0]], dtype=torch.float64))


# ---------------------------------------------------------------------------
# 4.3.5 The clipped losses
# ---------------------------------------------------------------------------
def _loss_inputs(seed: int, spread: float):
    old_logprobs = _padded(-_rand(seed).abs() - 0.5, junk=-1.0)
    # spread 0 -> new == old (ratio 1); a large spread sends ratios outside 1 +- eps
    new_logprobs = _padded(old_logprobs + _rand(seed + 1, scale=spread), junk=-9.0)
    advantages = _padded(_rand(seed + 2), junk=3.0)
    old_values = _padded(_rand(seed + 3), junk=-4.0)
    new_values = _padded(old_values + _rand(seed + 4, scale=spread), junk=6.0)
    returns = _padded(_rand(seed + 5), junk=2.0)
    return new_logprobs, old_logprobs, advantages, new_values, old_values, returns


@pytest.mark.parametrize("spread", [0.0, 0.05, 1.0])
@pytest.mark.parametrize("eps", [0.1, 0.2])
def test_clipped_losses_match_package(nb, spread, eps):
    new_lp, old_lp, adv, new_v, old_v, ret = _loss_inputs(10, spread)
    out = ppo.ppo_losses(new_lp, old_lp, adv, new_v, old_v, ret, MASK, eps, eps)
    pg = nb["clipped_surrogate"](new_lp, old_lp, adv, MASK, eps)
    vf = nb["clipped_value_loss"](new_v, old_v, ret, MASK, eps)
    assert_close(pg, out["pg_loss"])
    assert_close(vf, out["vf_loss"])
    if spread == 1.0:  # the case the clip exists for: it must bite somewhere
        assert out["clipfrac"] > 0 and out["vf_clipfrac"] > 0
    if spread == 0.0:  # nothing moved: loss = -mean(A), no clipping
        assert_close(pg, -(adv * MASK).sum() / MASK.sum())
        assert out["clipfrac"] == 0


def test_clipped_surrogate_by_hand(nb):
    """Ratio 1.5 with eps 0.2: a positive advantage is clipped to 1.2, a negative
    one is not (the max keeps the pessimistic term)."""
    new = torch.log(torch.tensor([[0.6, 0.6]], dtype=torch.float64))
    old = torch.log(torch.tensor([[0.4, 0.4]], dtype=torch.float64))
    ones = torch.ones_like(new)
    assert_close(nb["clipped_surrogate"](new, old, ones, ones, 0.2),
                 torch.tensor(-1.2, dtype=torch.float64))
    assert_close(nb["clipped_surrogate"](new, old, -ones, ones, 0.2),
                 torch.tensor(1.5, dtype=torch.float64))


def test_clipped_value_loss_by_hand(nb):
    one = torch.ones(1, 1, dtype=torch.float64)
    # V jumps from 0 to G = 1: the clipped V is 0.2, so the loss is 0.5 * 0.8^2
    assert_close(nb["clipped_value_loss"](one, 0 * one, one, one, 0.2),
                 torch.tensor(0.32, dtype=torch.float64))
