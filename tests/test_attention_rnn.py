"""textgenrnn-style attention RNN: skip connections + windowed attention pooling, carried state."""

from __future__ import annotations

import pytest
import torch

from xuxie.errors import XuxieError
from xuxie.models import build_model


@pytest.mark.parametrize("options", [
    {"hidden_size": 32, "num_layers": 2, "embed_dim": 16, "window": 8},
    {"hidden_size": 24, "num_layers": 1, "embed_dim": 8, "window": 1},
    {"hidden_size": 16, "num_layers": 3, "embed_dim": 8, "window": 50},
])
def test_step_equals_forward(options):
    torch.manual_seed(0)
    model = build_model("attention-rnn", 30, **options).eval()
    ids = torch.randint(0, 30, (3, 37))
    with torch.no_grad():
        full, _ = model(ids)
        state, steps = None, []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            steps.append(logits)
        # a prefix through forward, the rest step by step: the same
        _, st = model(ids[:, :20])
        rest = []
        for t in range(20, 37):
            logits, st = model.step(ids[:, t], st)
            rest.append(logits)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.stack(rest, 1), full[:, 20:], atol=1e-5, rtol=0)


def test_attention_pools_only_the_window():
    """A token further back than the window changes the prediction only through the LSTM state."""
    torch.manual_seed(0)
    model = build_model("attention-rnn", 20, hidden_size=16, num_layers=1, embed_dim=8, window=4).eval()
    with torch.no_grad():
        model.rnns[0].weight_hh_l0.zero_()  # no recurrence: features depend on the current token only
        model.rnns[0].bias_hh_l0.zero_()
        model.rnns[0].bias_ih_l0[16:32] = -1e4  # forget gate shut: the cell state does not carry either
        a = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
        b = torch.tensor([[9, 2, 3, 4, 5, 6, 7]])  # differs 6 positions before the last one
        la, _ = model(a)
        lb, _ = model(b)
    torch.testing.assert_close(la[:, -1], lb[:, -1])
    assert not torch.allclose(la[:, 3], lb[:, 3])


def test_reorder_and_bad_options():
    model = build_model("attention-rnn", 20, hidden_size=8, num_layers=2, embed_dim=4, window=5).eval()
    with torch.no_grad():
        _, st = model(torch.randint(0, 20, (1, 9)))
        st = model.reorder_state(st, torch.tensor([0, 0]))
        logits, _ = model.step(torch.tensor([1, 2]), st)
    assert logits.shape == (2, 20)
    with pytest.raises(XuxieError, match="window must be at least 1"):
        build_model("attention-rnn", 20, window=0)
    with pytest.raises(XuxieError, match="no option"):
        build_model("attention-rnn", 20, tie_weights=True)


def test_bidirectional_windows():
    """textgenrnn's bidirectional option: each position reads its window both ways; step == forward."""
    torch.manual_seed(0)
    model = build_model("attention-rnn", 30, hidden_size=16, num_layers=2, embed_dim=8, window=6, bidirectional=True).eval()
    ids = torch.randint(1, 30, (2, 15))
    with torch.no_grad():
        full, _ = model(ids)
        state, steps = None, []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            steps.append(logits)
        # position 10 depends only on tokens 5..10
        changed = ids.clone()
        changed[:, 4] = (changed[:, 4] % 29) + 1
        other, _ = model(changed)
    torch.testing.assert_close(torch.stack(steps, 1), full, atol=1e-5, rtol=0)
    torch.testing.assert_close(other[:, 10], full[:, 10])
    assert not torch.allclose(other[:, 8], full[:, 8])
    model.train()
    out, _ = model(ids)
    out.sum().backward()
    assert model.rnns[1].weight_hh_l0_reverse.grad is not None


def test_bidirectional_through_the_api(tmp_path):
    from xuxie import TextGenerator

    text = "the quick brown fox jumps over the lazy dog\n" * 200
    tg = TextGenerator.train(text, arch="attention-rnn", out=tmp_path / "bi", steps=3, batch_size=4, preview_length=0,
                             progress=False, model_options={"hidden_size": 16, "embed_dim": 8, "window": 10, "bidirectional": True})
    assert tg.config["train"]["seq_len"] == 10 and tg.model.config.bidirectional
    again = TextGenerator.load(tmp_path / "bi")
    assert again.generate(2, max_new_tokens=30, seed=0) == tg.generate(2, max_new_tokens=30, seed=0)
