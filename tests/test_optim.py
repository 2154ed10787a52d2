"""Muon and the speedrun's model and schedule options: what they compute, that runs with them resume
exactly, and that models saved before an option existed load as they were."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import InterruptAt

from xuxie import TextGenerator, XuxieError
from xuxie.checkpoint import load_trainer_state
from xuxie.models import build_model, model_from_config
from xuxie.optim import Muon, Optimizers, orthogonalize
from xuxie.training import Checkpoint, MetricsLog, TrainConfig, Trainer, make_optimizer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 96, 32), (2, 32, 96), (2, 48, 48)])
def test_orthogonalize_flattens_the_singular_values(shape, dtype):
    u, _, vh = torch.linalg.svd(torch.randn(*shape), full_matrices=False)
    g = u * torch.logspace(-2, 0, u.shape[-1]) @ vh  # singular values over two orders of magnitude
    x = orthogonalize(g, 5, dtype)
    assert x.shape == g.shape and x.dtype == g.dtype
    s = torch.linalg.svdvals(x)
    assert s.min() > 0.3 and s.max() < 1.3  # the quintic iteration lands near 1, not on it, by design
    # The same directions as the exact polar factor U·Vᵀ.
    polar = u @ vh
    cosine = (x * polar).sum((-2, -1)) / (x.norm(dim=(-2, -1)) * polar.norm(dim=(-2, -1)))
    assert cosine.min() > 0.9


def test_muon_steps_like_torchs_muon():
    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(64, 32), torch.randn(32, 96)]
    ours = [w.clone().requires_grad_() for w in weights]
    theirs = [w.clone().requires_grad_() for w in weights]
    a = Muon(ours, lr=0.05, weight_decay=0.1, ns_dtype=torch.bfloat16)  # torch's Muon iterates in bf16
    b = torch.optim.Muon(theirs, lr=0.05, weight_decay=0.1, adjust_lr_fn="original")
    for _ in range(3):
        grads = [torch.randn_like(w) for w in weights]
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q, w in zip(ours, theirs, weights):
        assert (p - w).abs().max() > 0.05  # it moved
        torch.testing.assert_close(p, q, atol=2e-3, rtol=0)


def test_muon_takes_only_matrices():
    with pytest.raises(ValueError, match="only 2-D"):
        Muon([torch.zeros(3, requires_grad=True)])


@pytest.mark.parametrize("arch, options", [("transformer", {"n_layer": 2, "n_embd": 32, "n_head": 2}),
                                           ("transformer", {"n_layer": 1, "n_embd": 32, "n_head": 2, "tie_weights": False}),
                                           ("lstm", {"hidden_size": 32})])
def test_muon_takes_the_hidden_matrices_and_adamw_the_rest(arch, options):
    model = build_model(arch, 50, **options)
    opt = make_optimizer(model, TrainConfig(optimizer="muon"))
    assert isinstance(opt, Optimizers)
    muon, adamw = opt.optimizers
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert not in_muon & in_adamw and in_muon | in_adamw == {id(p) for p in model.parameters()}
    for name, p in model.named_parameters():
        outer = "wte" in name or "embed" in name or "head" in name
        assert (id(p) in in_muon) == (p.dim() == 2 and not outer), name
    assert muon.param_groups[0]["lr_ratio"] == pytest.approx(TrainConfig.muon_lr / TrainConfig.lr)


@pytest.mark.parametrize("arch, options, optimizer", [
    ("transformer", {"n_layer": 1, "n_embd": 32, "n_head": 2}, "adamw"),
    ("transformer", {"n_layer": 1, "n_embd": 32, "n_head": 2, "tie_weights": False, "positions": "learned"}, "muon"),
    ("lstm", {"hidden_size": 32}, "adamw"), ("lstm", {"hidden_size": 32, "tie_weights": True}, "adamw"),
])
def test_weight_decay_spares_biases_norms_and_input_embeddings(arch, options, optimizer):
    """Decided by what a parameter is, not by its name: an input embedding (token or position) does
    not decay; one tied to the output layer is that layer too, and decays like it."""
    model = build_model(arch, 50, **options)
    opt = make_optimizer(model, TrainConfig(optimizer=optimizer, weight_decay=0.1))
    decays = {id(p) for o in getattr(opt, "optimizers", [opt]) for g in o.param_groups if g["weight_decay"] for p in g["params"]}
    tied = options.get("tie_weights", arch == "transformer")
    for name, p in model.named_parameters():
        embedding = name.split(".")[0] in ("wte", "wpe", "embed")
        assert (id(p) in decays) == (p.dim() == 2 and (not embedding or tied and name.split(".")[0] != "wpe")), name


def test_muon_run_resumes_exactly(shakespeare_text, tmp_path):
    text = shakespeare_text[:40_000]
    common = dict(arch="transformer", steps=16, eval_interval=8, optimizer="muon", schedule="wsd", batch_size=4,
                  preview_length=0, progress=False, precision="fp32")
    opts = {"n_layer": 2, "n_head": 2, "n_embd": 32, "context": 32}
    straight = TextGenerator.train(text, out=tmp_path / "a", model_options=opts, **common)
    with pytest.raises(KeyboardInterrupt):
        TextGenerator.train(text, out=tmp_path / "b", model_options=opts,
                            callbacks=[MetricsLog(), Checkpoint(), InterruptAt(11)], **common)
    resumed = TextGenerator.train(text, out=tmp_path / "b", resume=True, **common)
    assert json.loads(load_trainer_state(tmp_path / "b")["state"])["step"] == 16
    for pa, pb in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0)


def test_warmup_stable_decay_schedule():
    model = build_model("lstm", 20, hidden_size=8)
    ids = torch.randint(0, 20, (5_000,)).numpy()
    config = TrainConfig(schedule="wsd", lr=1e-2, warmup_steps=10, decay_fraction=0.25, min_lr_ratio=0.1, seq_len=16, batch_size=2)
    trainer = Trainer(model, None, ids, None, config)
    assert trainer.lr_at(0, 0.0) == pytest.approx(1e-3)  # warming up
    assert trainer.lr_at(50, 0.3) == trainer.lr_at(50, 0.75) == pytest.approx(1e-2)  # stable
    assert trainer.lr_at(50, 0.875) == pytest.approx(1e-2 * (0.1 + 0.9 * 0.5))  # half way down the decay
    assert trainer.lr_at(50, 1.0) == pytest.approx(1e-3)


@pytest.mark.parametrize("options", [{"mlp": "relu2"}, {"qk_norm": True}, {"logit_cap": 2.0}, {"zero_init": True}])
def test_transformer_options_decode_as_they_train(options):
    """Each option holds in every path: the KV-cache steps equal the full forward, past the context too."""
    torch.manual_seed(0)
    model = build_model("transformer", 40, n_layer=2, n_head=2, n_embd=32, context=16, **options).eval()
    if options.get("zero_init"):
        model.blocks[0].mlp_proj.weight.data.normal_()  # zero projections would hide a wrong path
    ids = torch.randint(0, 40, (2, 40))
    with torch.no_grad():
        full, _ = model(ids)
        state, stepped = None, []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            stepped.append(logits)
    torch.testing.assert_close(torch.stack(stepped, 1), full, atol=1e-4, rtol=0)
    if "logit_cap" in options:
        assert full.abs().max() < options["logit_cap"]


def test_zero_init_blocks_start_as_the_identity():
    model = build_model("transformer", 40, n_layer=2, n_head=2, n_embd=32, zero_init=True)
    assert all(not b.attn_proj.weight.any() and not b.mlp_proj.weight.any() for b in model.blocks)


def test_a_model_saved_before_the_options_loads_as_it_was():
    config = {k: v for k, v in vars(build_model("transformer", 30, n_layer=1, n_embd=16, n_head=2).config).items()
              if k not in ("mlp", "qk_norm", "logit_cap", "zero_init")}
    loaded = model_from_config("transformer", config).config
    assert (loaded.mlp, loaded.qk_norm, loaded.logit_cap) == ("gelu", False, 0.0)


@pytest.mark.parametrize("options, phrase", [({"mlp": "tanh"}, "unknown MLP activation 'tanh'"),
                                             ({"logit_cap": -1.0}, "logit cap must be 0")])
def test_bad_transformer_options(options, phrase):
    with pytest.raises(XuxieError, match=phrase):
        build_model("transformer", 10, **options)


@pytest.mark.parametrize("settings, phrase", [({"optimizer": "sgd"}, "unknown optimizer 'sgd'"),
                                              ({"decay_fraction": 0.0}, "decay fraction must be in"),
                                              ({"muon_lr": -1.0}, "Muon's learning rate must be positive")])
def test_bad_training_settings(settings, phrase):
    with pytest.raises(XuxieError, match=phrase):
        TrainConfig(**settings).validate()
