"""Every architecture: incremental ``step()`` equals ``forward()`` over the whole sequence."""

from __future__ import annotations

import pytest
import torch

from xuxie.errors import XuxieError
from xuxie.models import build_model

RNN_ARCHS = ("lstm", "gru", "rnn")


@pytest.mark.parametrize("arch", RNN_ARCHS)
@pytest.mark.parametrize("options", [
    {"hidden_size": 64, "num_layers": 2, "dropout": 0.2},
    {"hidden_size": 48, "num_layers": 1, "tie_weights": True, "embed_dim": 32},
    {"hidden_size": 32, "num_layers": 3, "tie_weights": True},
])
def test_step_equals_forward(arch, options):
    torch.manual_seed(0)
    model = build_model(arch, 50, **options).eval()
    ids = torch.randint(0, 50, (3, 40))
    with torch.no_grad():
        full, _ = model(ids)
        state = None
        steps = []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("arch", RNN_ARCHS)
def test_state_carries_across_calls(arch):
    torch.manual_seed(0)
    model = build_model(arch, 30, hidden_size=32, num_layers=2).eval()
    ids = torch.randint(0, 30, (2, 30))
    with torch.no_grad():
        full, _ = model(ids)
        a, state = model(ids[:, :17])
        b, _ = model(ids[:, 17:], state)
    torch.testing.assert_close(torch.cat([a, b], 1), full, atol=1e-5, rtol=0)


def test_reorder_state_selects_sequences():
    model = build_model("lstm", 20, hidden_size=16, num_layers=2).eval()
    ids = torch.randint(0, 20, (3, 5))
    with torch.no_grad():
        _, state = model(ids)
        picked = model.reorder_state(state, torch.tensor([2, 2, 0]))
        _, state2 = model(ids[[2, 2, 0]])
    for s1, s2 in zip(picked, state2):
        torch.testing.assert_close(s1, s2)


def test_tied_weights_share_storage():
    model = build_model("lstm", 40, hidden_size=32, tie_weights=True)
    assert model.head.weight.data_ptr() == model.embed.weight.data_ptr()


@pytest.mark.parametrize("options, phrase", [
    ({"cell": "xlstm"}, "architecture"),
    ({"dropout": 1.5}, "dropout"),
    ({"hidden_size": 0}, "at least 1"),
    ({"heads": 4}, "no option"),
])
def test_bad_model_options(options, phrase):
    arch = options.pop("cell", "lstm")
    with pytest.raises(XuxieError, match=phrase):
        build_model(arch, 10, **options)


@pytest.mark.parametrize("arch", RNN_ARCHS)
def test_fast_step_sees_weight_updates(arch):
    """Decoding caches the first layer's input projection; an optimiser step must invalidate it."""
    torch.manual_seed(0)
    model = build_model(arch, 30, hidden_size=32, num_layers=2)
    ids = torch.randint(0, 30, (2, 12))
    opt = torch.optim.AdamW(model.parameters(), lr=0.05)
    for _ in range(2):
        model.eval()
        with torch.inference_mode():
            prefix, state = model(ids[:, :-1])
            stepped, _ = model.step(ids[:, -1], state)
            full, _ = model(ids)
        torch.testing.assert_close(stepped, full[:, -1], atol=1e-5, rtol=0)
        model.train()
        logits, _ = model(ids)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
        opt.step()
        opt.zero_grad()
