"""The lean GPT-2 forward (rlhf_lessons.core.lean_gpt2) against transformers' own."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rlhf_lessons.core import lean_gpt2 as L


def gpt2(n_layer: int, seed: int = 0, **kw):
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(seed)
    conf = GPT2Config(vocab_size=20, n_positions=16, n_embd=32, n_layer=n_layer, n_head=4,
                      resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **kw)
    return GPT2Model(conf)


def right_padded(lengths, T, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 20, (len(lengths), T), generator=g)
    for i, n in enumerate(lengths):
        ids[i, n:] = 0
    return ids, torch.tensor(lengths) - 1


def hf_at_last(bb, ids, last):
    mask = (torch.arange(ids.shape[1])[None] <= last[:, None]).long()
    h = bb(input_ids=ids, attention_mask=mask).last_hidden_state
    return h[torch.arange(len(last)), last]


@pytest.mark.parametrize("n_layer", [1, 3])
def test_last_token_hidden_matches_transformers_values_and_gradients(n_layer):
    ids, last = right_padded([7, 3, 10, 1], T=10)
    ours_m, hf_m = gpt2(n_layer), gpt2(n_layer)
    ours = L.last_token_hidden(ours_m, ids, last)
    hf = hf_at_last(hf_m, ids, last)
    assert ours.shape == (4, 32)
    torch.testing.assert_close(ours, hf, atol=1e-5, rtol=1e-4)
    w = torch.randn(32, generator=torch.Generator().manual_seed(2))
    (ours @ w).sum().backward()
    (hf @ w).sum().backward()
    for (name, a), (_, b) in zip(ours_m.named_parameters(), hf_m.named_parameters()):
        assert b.grad is not None, name
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("n_layer,from_pos", [(1, 0), (2, 0), (2, 4), (3, 2)])
def test_causal_hidden_matches_transformers_at_real_positions_values_and_gradients(
        n_layer, from_pos):
    lengths, T = [7, 5, 10, 6], 10
    ids, _ = right_padded(lengths, T)
    mask = (torch.arange(T)[None] < torch.tensor(lengths)[:, None]).long()
    ours_m, hf_m = gpt2(n_layer), gpt2(n_layer)
    ours = L.causal_hidden(ours_m, ids, from_pos=from_pos)
    hf = hf_m(input_ids=ids, attention_mask=mask).last_hidden_state[:, from_pos:]
    assert ours.shape == (4, T - from_pos, 32)
    real = mask[:, from_pos:].bool()  # pads' outputs are not read
    torch.testing.assert_close(ours[real], hf[real], atol=1e-5, rtol=1e-4)
    w = torch.randn(32, generator=torch.Generator().manual_seed(2))
    (ours[real] @ w).sum().backward()
    (hf[real] @ w).sum().backward()
    for (name, a), (_, b) in zip(ours_m.named_parameters(), hf_m.named_parameters()):
        if b.grad is None:  # the final ln_f / unused parts agree on None too
            assert a.grad is None or not a.grad.any(), name
            continue
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    with pytest.raises(ValueError, match="from_pos"):
        L.causal_hidden(ours_m, ids, from_pos=T)


def test_a_non_standard_gpt2_takes_the_transformers_forward():
    # layer-scaled attention is maths the lean forward does not do
    bb = gpt2(2, scale_attn_by_inverse_layer_idx=True)
    assert not L.fast_ok(bb)
    ids, last = right_padded([5, 2], T=6)
    with torch.no_grad():
        torch.testing.assert_close(L.last_token_hidden(bb, ids, last),
                                   hf_at_last(bb, ids, last), atol=1e-5, rtol=1e-4)


def test_active_dropout_takes_the_transformers_forward():
    from transformers import GPT2Config, GPT2Model

    torch.manual_seed(0)
    bb = GPT2Model(GPT2Config(vocab_size=20, n_positions=16, n_embd=32, n_layer=1, n_head=4,
                              resid_pdrop=0.5)).train()
    ids, last = right_padded([5, 2], T=6)
    with torch.no_grad():
        a, b = L.last_token_hidden(bb, ids, last), L.last_token_hidden(bb, ids, last)
    assert not torch.equal(a, b)  # dropout really ran
    bb.eval()
    with torch.no_grad():
        torch.testing.assert_close(L.last_token_hidden(bb, ids, last),
                                   hf_at_last(bb, ids, last), atol=1e-5, rtol=1e-4)


def test_causal_attention_matches_sdpa_in_fp32_and_under_cpu_bf16_autocast():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(L.causal_attention(q, k, v), ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = L.causal_attention(q, k, v)
    assert ours.dtype == torch.bfloat16
    # bf16 keeps 8 bits of mantissa: agreement to about 1e-2
    torch.testing.assert_close(ours.float(), ref, atol=3e-2, rtol=3e-2)
    # and it is causal: the first query sees only the first key
    torch.testing.assert_close(ours[:, :, 0].float(), v[:, :, 0], atol=2e-2, rtol=2e-2)


def test_tiled_causal_attention_is_the_same_maths_as_sdpa_in_float64():
    # 11 queries in tiles of 4 (the last one short): values and all three gradients
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(6, 11, 8, generator=g, dtype=torch.float64, requires_grad=True)
               for _ in range(3))
    grad_out = torch.randn(6, 11, 8, generator=g, dtype=torch.float64)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    ours = L.TiledCausalAttention.apply(q, k, v, 4)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-12)
    for a, b in zip(torch.autograd.grad(ours, (q, k, v), grad_out),
                    torch.autograd.grad(ref, (q, k, v), grad_out)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_causal_attention_takes_the_tiles_past_two_of_them_under_cpu_bf16_autocast(
        monkeypatch):
    monkeypatch.setattr(L, "ATTENTION_TILE", 4)  # 9 queries: three tiles
    calls = []
    apply = L.TiledCausalAttention.apply
    monkeypatch.setattr(L.TiledCausalAttention, "apply",
                        lambda *a: calls.append(1) or apply(*a))
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=g, requires_grad=True) for _ in range(3))
    grad_out = torch.randn(2, 4, 9, 8, generator=g)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = L.causal_attention(q, k, v)
    assert calls and ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours.float(), ref, atol=3e-2, rtol=3e-2)
    for a, b in zip(torch.autograd.grad(ours.float(), (q, k, v), grad_out),
                    torch.autograd.grad(ref, (q, k, v), grad_out)):
        assert a.dtype == torch.float32  # back in the leaves' dtype
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


def grouped_batch(P=5, R=4, G=3, seed=2):
    """Two prompts (one left-padded by 2) with G answers each, rows interleaved so
    that a group's rows are not neighbours; answers end in padding at random."""
    g = torch.Generator().manual_seed(seed)
    prompts = torch.randint(1, 20, (2, P), generator=g)
    p_mask = torch.ones(2, P, dtype=torch.long)
    prompts[1, :2], p_mask[1, :2] = 0, 0
    ids = torch.cat([prompts.repeat(G, 1), torch.randint(1, 20, (2 * G, R), generator=g)], 1)
    mask = torch.cat([p_mask.repeat(G, 1), torch.ones(2 * G, R, dtype=torch.long)], 1)
    mask[0, -1] = mask[-1, -2:] = 0  # two answers shorter than R
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    return ids, mask, pos


@pytest.mark.parametrize("n_layer", [1, 2])
def test_answer_hidden_shares_prompts_with_the_same_values_and_gradients(n_layer):
    """Rows 0, 2, 4 and 1, 3, 5 share a prompt: it runs once per prompt, and the
    hidden states and every parameter's gradient equal the plain forward's."""
    bb = gpt2(n_layer)
    ids, mask, pos = grouped_batch()
    P = 5
    first, inverse = L.shared_prompts(ids, mask, P)
    assert inverse.tolist() == [inverse[0].item(), inverse[1].item()] * 3
    assert sorted(first.tolist()) == [0, 1]
    w = torch.randn(ids.size(0), ids.size(1) - P + 1, 32, generator=torch.Generator().manual_seed(3))
    out, grads = [], []
    for fn in (lambda: L.answer_hidden(bb, ids, mask, pos, P),
               lambda: L.gpt2_hidden(bb, ids, mask, pos, from_pos=P - 1)):
        bb.zero_grad()
        h = fn()
        real = torch.cat([torch.ones(ids.size(0), 1), mask[:, P:]], 1).bool()
        (h * w)[real].sum().backward()  # padded answer positions are never read
        out.append(h.detach()[real])
        grads.append([p.grad.clone() for p in bb.parameters()])
    torch.testing.assert_close(out[0], out[1], atol=1e-5, rtol=1e-4)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_answer_hidden_without_shared_prompts_is_the_plain_forward():
    bb = gpt2(2)
    ids, mask, pos = grouped_batch(G=1)
    assert L.shared_prompts(ids, mask, 5) is None
    torch.testing.assert_close(L.answer_hidden(bb, ids, mask, pos, 5),
                               L.gpt2_hidden(bb, ids, mask, pos, from_pos=4))


def test_a_shared_prefill_fills_the_same_cache_as_one_per_row():
    """The sampler prefills each distinct prompt once and copies its cache rows out."""
    from rlhf_lessons.core.generation import _prefill

    bb = gpt2(2)
    ids, mask, _ = grouped_batch(R=1)
    ids, mask = ids[:, :5], mask[:, :5]
    shared, last_s = _prefill(bb, ids, mask, 8)
    alone = [_prefill(bb, ids[b:b + 1], mask[b:b + 1], 8) for b in range(ids.size(0))]
    for b, (cache, last) in enumerate(alone):
        torch.testing.assert_close(last_s[b], last[0], atol=1e-5, rtol=1e-4)
        for i in range(2):
            real = mask[b].bool()
            torch.testing.assert_close(shared.k[i][b, :, :5][:, real], cache.k[i][0, :, :5][:, real],
                                       atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(shared.v[i][b, :, :5][:, real], cache.v[i][0, :, :5][:, real],
                                       atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------
# TokenLogProbs: the LM head, log-softmax and pick in one function
# ---------------------------------------------------------------------------
def _unfused(h, w, t, temperature):
    z = h @ w.t() / temperature
    logp_all = torch.log_softmax(z, -1)
    return logp_all.gather(-1, t[..., None])[..., 0], -(logp_all.exp() * logp_all).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_token_logprobs_match_the_unfused_ops_in_float64(temperature):
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randint(0, 11, (3, 4), generator=g)
    weights = torch.randn(3, 4, dtype=torch.float64, generator=g)  # dL/dlogp
    logp, ent = L.token_logprobs(h, w, t, temperature, with_entropy=True)
    (logp * weights).sum().backward()
    got = (logp.detach(), ent, h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    ref_logp, ref_ent = _unfused(h, w, t, temperature)
    (ref_logp * weights).sum().backward()
    for a, b in zip(got, (ref_logp.detach(), ref_ent.detach(), h.grad, w.grad)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    assert logp.shape == ent.shape == t.shape and not ent.requires_grad


def test_token_logprobs_a_second_backward_raises_and_no_grad_saves_nothing():
    h = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(6, 3, requires_grad=True)
    t = torch.tensor([0, 5, 2, 2])
    logp, ent = L.token_logprobs(h, w, t)
    assert ent is None
    logp.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        logp.sum().backward()  # the saved softmax was overwritten by the first
    with torch.no_grad():
        again, _ = L.token_logprobs(h, w, t)
    torch.testing.assert_close(again, logp.detach())
    assert again.grad_fn is None


def test_a_near_certain_token_has_entropy_zero_not_negative():
    h = torch.tensor([[30.0, 0.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.5]])
    _, ent = L.token_logprobs(h, w, torch.tensor([0]), with_entropy=True)
    assert ent.item() >= 0.0 and ent.item() < 1e-6


def test_token_logprobs_under_autocast_compute_in_the_weights_precision():
    h = torch.randn(5, 3, dtype=torch.float32)
    w = torch.randn(7, 3, dtype=torch.float32)
    t = torch.tensor([0, 6, 2, 2, 1])
    plain, _ = L.token_logprobs(h, w, t)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under, _ = L.token_logprobs(h.bfloat16(), w, t)
    assert under.dtype == torch.float32
    torch.testing.assert_close(under, plain, atol=0.05, rtol=0.02)  # h rounded to bf16 only
    with torch.autocast("cpu", dtype=torch.bfloat16):
        exact, _ = L.token_logprobs(h, w, t)
    torch.testing.assert_close(exact, plain)  # fp32 in: the fp32 result exactly


@pytest.mark.parametrize("n,chunk", [(10, 3), (8, 4), (5, 16)])
def test_chunked_token_logprobs_match_cross_entropy_in_float64(n, chunk):
    g = torch.Generator().manual_seed(1)
    h = torch.randn(n, 5, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(11, 5, dtype=torch.float64, generator=g, requires_grad=True)
    t = torch.randint(0, 11, (n,), generator=g)
    weights = torch.randn(n, dtype=torch.float64, generator=g)  # dL/dlogp
    logp = L.chunked_token_logprobs(h, w, t, chunk)
    (logp * weights).sum().backward()
    got = (logp.detach(), h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    ref = -F.cross_entropy(h @ w.t(), t, reduction="none")
    (ref * weights).sum().backward()
    for a, b in zip(got, (ref.detach(), h.grad, w.grad)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_chunked_token_logprobs_under_autocast_match_the_bf16_lm_head():
    # what DPO computed before: the LM head under autocast (bf16), then cross-entropy in fp32
    g = torch.Generator().manual_seed(2)
    h = torch.randn(12, 8, generator=g, requires_grad=True)
    w = torch.randn(20, 8, generator=g, requires_grad=True)
    t = torch.randint(0, 20, (12,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logp = L.chunked_token_logprobs(h, w, t, chunk=5)
        ref = -F.cross_entropy((h @ w.t()).float(), t, reduction="none")
    assert logp.dtype == torch.float32
    torch.testing.assert_close(logp, ref, atol=1e-5, rtol=1e-5)  # the same bf16 products
    logp.sum().backward()
    got = (h.grad.clone(), w.grad.clone())
    h.grad = w.grad = None
    ref.sum().backward()
    for a, b in zip(got, (h.grad, w.grad)):  # bf16 gradients, rounded at other points
        torch.testing.assert_close(a, b, atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="expected"):
        L.chunked_token_logprobs(h, w, t[:5])


def _exp_calls(fn) -> int:
    """How many exp kernels ``fn()`` runs (the pass that keeps the softmax for backward)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket.__name__ in ("exp", "exp_"):
                Count.n += 1
            return func(*args, **(kwargs or {}))

    with Count():
        fn()
    return Count.n


def test_the_log_prob_functions_keep_no_softmax_under_no_grad():
    # needs_input_grad stays True under no_grad; the softmax for a backward that cannot
    # come would be a pass and (N, V) floats for nothing
    h = torch.randn(6, 3, requires_grad=True)
    w = torch.randn(5, 3, requires_grad=True)
    t = torch.tensor([0, 4, 2, 2, 1, 3])
    assert _exp_calls(lambda: L.token_logprobs(h, w, t)) == 1
    assert _exp_calls(lambda: L.chunked_token_logprobs(h, w, t, chunk=4)) == 2  # a chunk each
    with torch.no_grad():
        assert _exp_calls(lambda: L.token_logprobs(h, w, t)) == 0
        assert _exp_calls(lambda: L.chunked_token_logprobs(h, w, t, chunk=4)) == 0
        with_grad, _ = L.token_logprobs(h, w, t)
    torch.testing.assert_close(with_grad, L.token_logprobs(h, w, t)[0].detach())


def test_chunked_token_logprobs_a_second_backward_raises():
    h = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(6, 3, requires_grad=True)
    logp = L.chunked_token_logprobs(h, w, torch.tensor([0, 5, 2, 2]), chunk=3)
    logp.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError):
        logp.sum().backward()  # the saved softmax was overwritten by the first
