"""The adaptive softmax output layer of the recurrent models (large vocabularies): a real
distribution over the whole vocabulary, the same losses by every path, clusters cut by frequency
whatever the id order, saved and loaded with the model, and a model that learns with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from xuxie.errors import XuxieError
from xuxie.models import build_model, model_from_config
from xuxie.models.heads import ADAPTIVE_DROPOUT, ADAPTIVE_MIN_VOCAB, auto_cutoffs

VOCAB = 3000


def zipf_ids(n: int, vocab: int = VOCAB, seed: int = 0) -> np.ndarray:
    """Zipf-distributed ids whose frequency order is scrambled against the id order."""
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, n) - 1, vocab - 1)
    return rng.permutation(vocab)[ranks]


def adaptive_model(arch: str = "lstm", **options):
    torch.manual_seed(0)
    return build_model(arch, VOCAB, hidden_size=32, **options)


def test_default_cutoffs_follow_the_vocabulary_size():
    assert auto_cutoffs(ADAPTIVE_MIN_VOCAB - 1, 512) == []
    assert auto_cutoffs(4400, 512) == [1000, 4000]
    assert auto_cutoffs(20000, 512) == [2000, 8000]
    assert auto_cutoffs(20000, 16) == [2000]  # a second tail would be 1 unit wide
    assert auto_cutoffs(20000, 8) == []
    assert build_model("lstm", 100).config.softmax_cutoffs == []
    assert build_model("lstm", 20000, hidden_size=64).config.softmax_cutoffs == [2000, 8000]
    assert build_model("lstm", 20000, hidden_size=8, tie_weights=True).config.softmax_cutoffs == []


def test_large_vocabularies_get_dropout_unless_told():
    """The adaptive softmax's models overfit within minutes (README): they default to dropout."""
    assert build_model("lstm", 100).config.dropout == 0.0
    assert build_model("lstm", 20000, hidden_size=64).config.dropout == ADAPTIVE_DROPOUT
    assert build_model("lstm", 20000, hidden_size=64, dropout=0.0).config.dropout == 0.0
    assert build_model("lstm", 20000, hidden_size=64, softmax_cutoffs=[]).config.dropout == 0.0


@pytest.mark.parametrize("arch", ["lstm", "gru", "rnn"])
def test_log_probs_are_a_distribution_and_every_path_agrees(arch):
    model = adaptive_model(arch, num_layers=2, softmax_cutoffs=[100, 1000]).eval()
    model.learn_token_frequencies(zipf_ids(50_000))
    ids, targets = torch.randint(0, VOCAB, (3, 20)), torch.randint(0, VOCAB, (3, 20))
    with torch.no_grad():
        log_probs, _ = model(ids)
        torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 20))
        losses, _ = model.token_losses(ids, targets)
        torch.testing.assert_close(losses, -log_probs.gather(-1, targets[..., None])[..., 0], atol=1e-5, rtol=0)
        state, steps = None, []
        for t in range(ids.shape[1]):
            step, state = model.step(ids[:, t], state)
            steps.append(step)
    torch.testing.assert_close(torch.stack(steps, 1), log_probs, atol=1e-5, rtol=0)


def test_ignored_targets_cost_nothing():
    model = adaptive_model(softmax_cutoffs=[100]).eval()
    ids, targets = torch.randint(1, VOCAB, (2, 8)), torch.randint(1, VOCAB, (2, 8))
    targets[0, :3] = 0
    with torch.no_grad():
        losses, _ = model.token_losses(ids, targets, ignore_index=0)
        full, _ = model.token_losses(ids, targets.clamp(min=1))
    assert (losses[0, :3] == 0).all()
    torch.testing.assert_close(losses[targets != 0], full[targets != 0])


def test_clusters_are_cut_by_frequency_not_by_id():
    model = adaptive_model(softmax_cutoffs=[10])
    ids = zipf_ids(100_000)
    model.learn_token_frequencies(ids)
    counts = np.bincount(ids, minlength=VOCAB)
    top = np.argsort(-counts, kind="stable")[:10]
    assert sorted(model.head.rank[torch.from_numpy(top)].tolist()) == list(range(10))
    # rank is a permutation: every token has exactly one place
    assert sorted(model.head.rank.tolist()) == list(range(VOCAB))


def test_ranks_and_cutoffs_are_saved_with_the_model():
    model = adaptive_model(softmax_cutoffs=[50, 500]).eval()
    model.learn_token_frequencies(zipf_ids(20_000))
    loaded = model_from_config("lstm", dict(model.config.__dict__))
    loaded.load_state_dict(model.state_dict())
    ids = torch.randint(0, VOCAB, (1, 12))
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids)[0], model(ids)[0])


def test_a_model_saved_before_the_option_loads_with_the_full_softmax():
    config = dict(build_model("lstm", VOCAB, hidden_size=8, softmax_cutoffs=[]).config.__dict__)
    del config["softmax_cutoffs"]
    assert model_from_config("lstm", config).config.softmax_cutoffs == []


@pytest.mark.parametrize("options, phrase", [
    ({"softmax_cutoffs": [500, 100]}, "increasing"),
    ({"softmax_cutoffs": [0]}, "between 1 and the vocabulary size"),
    ({"softmax_cutoffs": [VOCAB]}, "between 1 and the vocabulary size"),
    ({"softmax_cutoffs": [100], "tie_weights": True}, "tied output layer"),
    ({"softmax_cutoffs": [10, 100, 1000], "hidden_size": 32}, "at least 64 units"),
])
def test_bad_cutoffs_are_refused(options, phrase):
    with pytest.raises(XuxieError, match=phrase):
        build_model("lstm", VOCAB, **{"hidden_size": 64, **options})


def test_word_level_chinese_learns_with_the_adaptive_softmax(tmp_path):
    """A jieba word model of 红楼梦 (its vocabulary capped at 3,000, so the adaptive softmax is on)
    learns: its validation loss falls well below the unigram entropy of its vocabulary."""
    from conftest import corpus_path

    from xuxie import TextGenerator

    text = corpus_path("hongloumeng.txt").read_text(encoding="utf-8")[:150_000]
    tg = TextGenerator.train(text, tokenizer="word", max_vocab=3000, out=tmp_path / "m", steps=120, seq_len=64,
                             batch_size=32, eval_interval=120, preview_length=0, progress=False,
                             model_options={"hidden_size": 128})
    assert tg.model.config.softmax_cutoffs == auto_cutoffs(tg.model.config.vocab_size, 128)
    assert tg.model.config.softmax_cutoffs, "a 3,000-token vocabulary gets the adaptive softmax"
    ids = np.asarray(tg.tokenizer.encode(text))
    p = np.bincount(ids) / ids.size
    unigram = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    r = tg.config["results"]
    assert r["final_val_loss"] < unigram - 0.5
    # Bits per character: a word token holds 1.3–1.5 characters here, so it is the loss per token
    # over the characters per token (it once multiplied by them).
    tokens_per_char = ids.size / len(text)
    assert r["final_val_bpc"] == pytest.approx(r["final_val_loss"] * tokens_per_char / math.log(2), rel=0.05)
    reloaded = TextGenerator.load(tmp_path / "m")
    assert torch.equal(reloaded.model.head.rank, tg.model.head.rank)
    assert reloaded.generate(n=1, max_new_tokens=20, seed=0) == tg.generate(n=1, max_new_tokens=20, seed=0)


def test_muon_leaves_the_adaptive_softmax_to_adamw():
    from xuxie.training import hidden_matrices

    model = adaptive_model(softmax_cutoffs=[100, 1000])
    head = {id(p) for p in model.head.parameters()}
    matrices = hidden_matrices(model)
    assert matrices and not head.intersection(map(id, matrices))
    assert not model.uses_every_parameter  # DistributedDataParallel must look for unused tails


@pytest.mark.parametrize("flag, phrase", [
    (["--softmax-cutoffs", "lots"], "--softmax-cutoffs takes 'auto', 'full'"),
    (["--softmax-cutoffs", "50,10"], "increasing"),
    (["--softmax-cutoffs", "10", "--arch", "transformer"], "--softmax-cutoffs is for --arch lstm"),
])
def test_cli_refuses_bad_cutoffs(tmp_path, shakespeare_text, flag, phrase):
    from conftest import assert_clear_error, run

    corpus = tmp_path / "t.txt"
    corpus.write_text(shakespeare_text[:5000], encoding="utf-8")
    result = run("train", str(corpus), "--out", str(tmp_path / "m"), "--steps", "1", *flag)
    assert_clear_error(result, phrase)
    assert not (tmp_path / "m").exists()


def test_cli_cutoffs_reach_the_model(tmp_path, shakespeare_text):
    import json

    from conftest import run

    corpus = tmp_path / "t.txt"
    corpus.write_text(shakespeare_text[:20_000], encoding="utf-8")
    for value, expected in (("20", [20]), ("full", [])):
        out = tmp_path / value
        result = run("train", str(corpus), "--out", str(out), "--steps", "2", "--hidden-size", "16", "--seq-len", "16",
                     "--batch-size", "4", "--softmax-cutoffs", value, "--preview-length", "0")
        assert result.exit_code == 0, result.stderr
        assert json.loads((out / "config.json").read_text())["model"]["softmax_cutoffs"] == expected
