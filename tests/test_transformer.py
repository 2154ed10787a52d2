"""GPT-style transformer: KV-cache steps equal full forward passes, also past the context length."""

from __future__ import annotations

import pytest
import torch

from xuxie.errors import XuxieError
from xuxie.models import PRESETS, build_model


def _model(**options):
    torch.manual_seed(0)
    opts = {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 16, **options}
    return build_model("transformer", 40, **opts).eval()


def _stepped(model, ids, state=None):
    out = []
    for t in range(ids.shape[1]):
        logits, state = model.step(ids[:, t], state)
        out.append(logits)
    return torch.stack(out, 1), state


@pytest.mark.parametrize("positions", ["rotary", "learned"])
def test_step_equals_forward_within_context(positions):
    model = _model(positions=positions)
    ids = torch.randint(0, 40, (3, 16))
    with torch.no_grad():
        full, _ = model(ids)
        stepped, cache = _stepped(model, ids)
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=0)
    assert cache.pos == 16 and cache.k.shape[3] == 16  # preallocated: one slot per context position


@pytest.mark.parametrize("options", [
    {"qk_norm": True}, {"logit_cap": 5.0}, {"bias": False}, {"mlp": "relu2"}, {"tie_weights": False},
    {"positions": "learned", "qk_norm": True, "bias": False},
])
def test_planned_step_equals_forward_for_every_option(options):
    """Generation's one-token step (a DecodePlan: transposed weights, rotate-half folded into the
    projection) computes what the full forward does, for each architecture option."""
    model = _model(**options)
    with torch.no_grad():
        for p in model.parameters():  # biases and norms away from their 0 / 1 start, so each one counts
            p.add_(0.1 * torch.randn_like(p))
    ids = torch.randint(0, 40, (2, 24 if options.get("positions") != "learned" else 16))
    with torch.inference_mode():
        full, _ = model(ids)
        stepped, cache = _stepped(model, ids)
    assert cache.plan is not None
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=0)


def test_the_plan_follows_the_weights():
    """A weight changed in place (an optimiser step, a load) gives the next generation a new plan;
    with gradients on (training) the step does not use one."""
    model = _model()
    ids = torch.randint(0, 40, (1, 8))
    with torch.inference_mode():
        _, first = model.prefill(ids)
    with torch.no_grad():
        model.blocks[0].c_fc.weight.mul_(2)
    with torch.inference_mode():
        _, second = model.prefill(ids)
        stepped, _ = model.step(ids[:, 0], second)
        full, _ = model(torch.cat([ids, ids[:, :1]], 1))
    assert second.plan is not first.plan
    torch.testing.assert_close(stepped, full[:, -1], atol=1e-4, rtol=0)
    assert model.prefill(ids)[1].plan is None


def test_a_model_that_generated_past_its_rotary_table_still_trains():
    """Generating past twice the context grows the rotary table inside inference mode; the next
    training step used to fail ("Inference tensors cannot be saved for backward") — a training
    preview of a long sample, or generate-then-train in one process."""
    model = _model()
    with torch.inference_mode():
        _stepped(model, torch.randint(0, 40, (1, 3 * model.config.context)))
    model.train()
    logits, _ = model(torch.randint(0, 40, (2, 16)))
    logits.sum().backward()
    assert model.blocks[0].c_attn.weight.grad is not None


def test_step_equals_forward_past_context_rotary():
    """Rotary + sliding window: the ring-buffer cache equals a banded-mask forward over 3.5 contexts."""
    model = _model(positions="rotary")
    ids = torch.randint(0, 40, (2, 56))
    with torch.no_grad():
        full, _ = model(ids)
        stepped, cache = _stepped(model, ids)
        # prefill part way, then step: the same
        _, state = model.prefill(ids[:, :37])
        rest, _ = _stepped(model, ids[:, 37:], state)
    torch.testing.assert_close(stepped, full, atol=1e-4, rtol=0)
    torch.testing.assert_close(rest, full[:, 37:], atol=1e-4, rtol=0)
    assert cache.pos == 56 and cache.k.shape[3] == 16
    # Within the first window the banded forward is plain causal attention.
    with torch.no_grad():
        head, _ = model(ids[:, :16])
    torch.testing.assert_close(full[:, :16], head, atol=1e-5, rtol=0)


def test_learned_positions_restart_the_window():
    """Learned positions past the context: the step sees the last half window, re-encoded from position 0."""
    model = _model(positions="learned")
    W = model.config.context
    ids = torch.randint(0, 40, (2, 40))
    with torch.no_grad():
        stepped, cache = _stepped(model, ids)
        for t in (W, W + 3, 30, 39):  # t: index of the token whose logits we check
            # what the cache holds when token t is processed: the window restarted at the last multiple
            seen = _window_for(t, W)
            window, _ = model(ids[:, seen:t + 1])
            torch.testing.assert_close(stepped[:, t], window[:, -1], atol=1e-4, rtol=0)
        with pytest.raises(XuxieError, match="longer than this model's context"):
            model(ids)


def _window_for(t: int, W: int) -> int:
    """First token visible at step t for learned positions (restart keeps W // 2 tokens)."""
    keep = W // 2
    start, pos = 0, 0
    for i in range(t + 1):
        if pos + 1 > W:
            start = i - (keep - 1)
            pos = keep
        else:
            pos += 1
    return start


def test_batched_and_reordered_cache():
    model = _model()
    ids = torch.randint(0, 40, (1, 10))
    with torch.no_grad():
        _, state = model.prefill(ids)
        state = model.reorder_state(state, torch.tensor([0, 0, 0]))
        nxt = torch.tensor([1, 2, 3])
        logits, _ = model.step(nxt, state)
        for b in range(3):
            full, _ = model(torch.cat([ids, nxt[b].view(1, 1)], 1))
            torch.testing.assert_close(logits[b], full[0, -1], atol=1e-4, rtol=0)


def test_presets_and_tied_embeddings():
    for name, sizes in PRESETS.items():
        cfg = build_model("transformer", 65, preset=name).config
        assert (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.context) == tuple(sizes[k] for k in ("n_layer", "n_head", "n_embd", "context"))
    m = build_model("transformer", 65, preset="tiny", n_layer=2)
    assert m.config.n_layer == 2 and m.config.n_embd == PRESETS["tiny"]["n_embd"]  # explicit sizes win
    assert m.lm_head.weight.data_ptr() == m.wte.weight.data_ptr()


@pytest.mark.parametrize("options, phrase", [
    ({"preset": "huge"}, "unknown transformer preset 'huge'"),
    ({"n_head": 5, "n_embd": 128}, "5 heads do not divide the width 128"),
    ({"context": 0}, "context must be at least 1"),
    ({"positions": "alibi"}, "unknown positions 'alibi'"),
    ({"dropout": 1.0}, "dropout must be in [0, 1)"),
])
def test_bad_options(options, phrase):
    with pytest.raises(XuxieError, match=phrase.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        build_model("transformer", 10, **options)


def test_training_gradients_flow_and_dropout():
    model = _model(dropout=0.1)
    model.train()
    ids = torch.randint(0, 40, (4, 16))
    logits, state = model(ids)
    assert state is None  # no cache while training
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_attention_runs_in_fp32_under_cpu_autocast(monkeypatch):
    """bf16 autocast speeds the matrix products; attention stays fp32 (its bf16 CPU backward is slow),
    and the loss and gradients stay those of fp32 training up to bf16 rounding."""
    sdpa = torch.nn.functional.scaled_dot_product_attention
    seen = []

    def recording(q, k, v, **kw):
        seen.append((q.dtype, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, **kw)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
    model = _model().train()
    ids = torch.randint(0, 40, (4, 16))

    def loss_and_grads(bf16: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, _ = model(ids)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), ids.flatten())
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    loss32, grads32 = loss_and_grads(False)
    seen.clear()
    loss16, grads16 = loss_and_grads(True)
    assert seen == [(torch.float32, False)] * 2  # both layers: fp32 inputs, autocast off inside
    assert abs(loss16 - loss32) < 0.02
    assert torch.nn.functional.cosine_similarity(grads16, grads32, dim=0) > 0.99
