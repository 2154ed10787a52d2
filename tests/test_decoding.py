"""Decoding obeys its parameters."""

from __future__ import annotations

import math

import pytest
import torch

from xuxie.decoding import (
    GenerationConfig,
    NoRepeatNGram,
    RepetitionPenalty,
    TextAssembler,
    TopK,
    TopP,
    beam_search,
    prompt_ids_for,
    sample_steps,
    sequence_logprob,
    suppressed_ids,
)
from xuxie.errors import XuxieError, XuxieWarning


@pytest.fixture(scope="module")
def tg(small_shakespeare_model):
    return small_shakespeare_model


def test_greedy_is_deterministic(tg):
    a = tg.generate(prompt="ROMEO:", temperature=0, max_new_tokens=80)
    b = tg.generate(prompt="ROMEO:", temperature=0, max_new_tokens=80)
    assert a == b
    assert len(a[0]) == len("ROMEO:") + 80


def test_top_k_1_equals_greedy(tg):
    greedy = tg.generate(prompt="KING", temperature=0, max_new_tokens=100)
    for seed in (1, 2, 3):
        assert tg.generate(prompt="KING", temperature=1.3, top_k=1, max_new_tokens=100, seed=seed) == greedy


def test_seed_reproduces_and_differs(tg):
    a = tg.generate(3, prompt="The ", temperature=1.0, max_new_tokens=120, seed=7)
    b = tg.generate(3, prompt="The ", temperature=1.0, max_new_tokens=120, seed=7)
    c = tg.generate(3, prompt="The ", temperature=1.0, max_new_tokens=120, seed=8)
    assert a == b
    assert a != c
    assert len(set(a)) == 3  # the n samples are different from each other


def test_stream_equals_generate(tg):
    pieces = list(tg.stream("First", temperature=0.8, seed=3, max_new_tokens=150))
    assert len(pieces) > 10
    assert "First" + "".join(pieces) == tg.generate(prompt="First", temperature=0.8, seed=3, max_new_tokens=150)[0]


def test_stop_string_cuts_text(tg):
    texts = tg.generate(5, prompt="", temperature=1.0, max_new_tokens=300, seed=1, stop="\n", include_prompt=False)
    assert all("\n" not in t for t in texts)
    streamed = "".join(tg.stream("", temperature=1.0, max_new_tokens=300, seed=1, stop=["\n"]))
    assert "\n" not in streamed


def test_top_p_keeps_exactly_the_nucleus():
    probs = torch.tensor([[0.45, 0.25, 0.15, 0.10, 0.05]])
    scores = probs.log()
    kept = lambda p: torch.isfinite(TopP(p)(None, scores.clone()))[0].tolist()  # noqa: E731
    assert kept(0.45) == [True, False, False, False, False]
    assert kept(0.5) == [True, True, False, False, False]
    assert kept(0.70) == [True, True, False, False, False]
    assert kept(0.71) == [True, True, True, False, False]
    assert kept(0.9) == [True, True, True, True, False]
    assert kept(1.0) == [True] * 5
    # Renormalised probabilities equal the nucleus' share.
    p = TopP(0.8)(None, scores.clone()).softmax(-1)[0]
    assert torch.allclose(p[:3], probs[0, :3] / probs[0, :3].sum())


def test_top_k_keeps_k():
    scores = torch.tensor([[3.0, 1.0, 2.0, 0.5]])
    assert torch.isfinite(TopK(2)(None, scores.clone()))[0].tolist() == [True, False, True, False]


def test_repetition_penalty_lowers_repeated_tokens():
    scores = torch.tensor([[2.0, -1.0, 0.5, 1.0]])
    history = torch.tensor([[0, 1]])
    before = scores.softmax(-1)[0]
    after = RepetitionPenalty(1.5)(history, scores.clone()).softmax(-1)[0]
    assert after[0] < before[0] and after[1] < before[1]
    assert after[2] > before[2] and after[3] > before[3]


def test_repetition_penalty_reduces_repeats_in_generation(tg):
    def distinct_ratio(text):
        words = text.split()
        return len(set(words)) / max(len(words), 1)

    plain = tg.generate(prompt="the ", temperature=0, max_new_tokens=300, include_prompt=False)[0]
    penalised = tg.generate(prompt="the ", temperature=0, max_new_tokens=300, repetition_penalty=1.5, include_prompt=False)[0]
    assert distinct_ratio(penalised) > distinct_ratio(plain)


def test_no_repeat_ngram():
    history = torch.tensor([[5, 6, 7, 5, 6]])
    scores = torch.zeros(1, 10)
    out = NoRepeatNGram(3)(history, scores.clone())
    assert out[0, 7] == -math.inf
    assert torch.isfinite(out[0, [0, 1, 2, 3, 4, 5, 6, 8, 9]]).all()


def test_no_repeat_ngram_in_generation(tg):
    text = tg.generate(prompt="", temperature=0, max_new_tokens=300, no_repeat_ngram_size=4, include_prompt=False)[0]
    ids = tg.tokenizer.encode(text)
    grams = [tuple(ids[i:i + 4]) for i in range(len(ids) - 3)]
    assert len(grams) == len(set(grams))


def test_beam_1_equals_greedy(tg):
    m, tok = tg.model, tg.tokenizer
    prompt = prompt_ids_for(tok, "ROMEO:", "text")
    cfg = GenerationConfig(max_new_tokens=60, temperature=0)
    greedy = [t[0] for t in sample_steps(m, prompt, cfg, 1, None, suppressed_ids(tok, "text"))]
    beam = beam_search(m, prompt, GenerationConfig(max_new_tokens=60, num_beams=1), None, suppressed_ids(tok, "text"))
    assert beam[0].tokens == greedy


@pytest.mark.parametrize("prompt", ["ROMEO:", "KING HENRY", "What is ", "\n", "My lord, ", "Thou art", "O", "First Citizen"])
def test_beam_4_never_below_greedy(tg, prompt):
    m, tok = tg.model, tg.tokenizer
    ids = prompt_ids_for(tok, prompt, "text")
    sup = suppressed_ids(tok, "text")
    greedy = [t[0] for t in sample_steps(m, ids, GenerationConfig(max_new_tokens=40, temperature=0), 1, None, sup)]
    hyps = beam_search(m, ids, GenerationConfig(max_new_tokens=40, num_beams=4), None, sup)
    assert len(hyps) == 4
    g_lp = sequence_logprob(m, ids, greedy, sup)
    b_lp = sequence_logprob(m, ids, hyps[0].tokens, sup)
    assert abs(b_lp - hyps[0].logprob) < 1e-3  # the score beam search reports is the model's
    assert b_lp >= g_lp - 1e-4


class MarkovChain:
    """A model whose next-token log-probabilities depend only on the last token: ``table[last]``."""

    device = torch.device("cpu")

    def __init__(self, table: dict[int, dict[int, float]], vocab: int = 6):
        self.rows = torch.full((vocab, vocab), -math.inf)
        for last, nexts in table.items():
            for tok, p in nexts.items():
                self.rows[last, tok] = math.log(p)

    def prefill(self, ids):
        return self.rows[ids[:, -1]][:, None], ids[:, -1]

    def step(self, ids, state):
        return self.rows[ids], ids

    def reorder_state(self, state, index):
        return state.index_select(0, index)


def test_beam_search_with_length_penalty_waits_for_longer_answers():
    # After the prompt (token 4): end now with p 0.5, or go on to token 5, which repeats almost
    # surely. Ending scores log 0.5 / 1; the running beam log 0.5 at first, but divided by its
    # length it becomes ≈ log 0.5 / 10 by the last step: it must not be dropped as soon as one
    # beam has finished (HF's default early stop does drop it).
    eos = 3
    chain = MarkovChain({4: {eos: 0.5, 5: 0.5}, 5: {5: 0.999, eos: 0.001}})
    longer = beam_search(chain, [4], GenerationConfig(max_new_tokens=10, num_beams=1, length_penalty=1.0), eos)[0]
    assert longer.tokens == [5] * 10 and not longer.finished
    assert longer.score == pytest.approx((math.log(0.5) + 9 * math.log(0.999)) / 10)
    raw = beam_search(chain, [4], GenerationConfig(max_new_tokens=10, num_beams=1, length_penalty=0.0), eos)[0]
    assert raw.tokens == [] and raw.finished and raw.logprob == pytest.approx(math.log(0.5))


def test_beam_search_keeps_an_ending_that_ranks_below_the_running_beams():
    # Ending at once (p 0.4) ranks second, below going on with token 5 (p 0.6) that takes the one
    # beam; but all that token 5 leads to is less likely than ending at once. HF's rule (keep an
    # ending only among the beam-count best candidates) never records it.
    eos = 3
    chain = MarkovChain({4: {5: 0.6, eos: 0.4}, 5: {5: 0.9, eos: 0.1}})
    best = beam_search(chain, [4], GenerationConfig(max_new_tokens=10, num_beams=1, length_penalty=0.0), eos)[0]
    assert best.tokens == [] and best.finished and best.logprob == pytest.approx(math.log(0.4))


def test_beam_search_through_api(tg):
    texts = tg.generate(2, prompt="ROMEO:", num_beams=4, max_new_tokens=30)
    assert len(texts) == 2 and texts[0] != texts[1]
    with pytest.raises(XuxieError, match="num_beams"):
        tg.generate(5, prompt="ROMEO:", num_beams=4)


@pytest.mark.parametrize(
    "kwargs, phrase",
    [({"temperature": -0.1}, "temperature"), ({"top_p": 0.0}, "top_p"), ({"top_p": 1.5}, "top_p"),
     ({"top_k": -1}, "top_k"), ({"max_new_tokens": -1}, "max_new_tokens"), ({"repetition_penalty": 0}, "repetition_penalty")],
)
def test_bad_sampling_values(tg, kwargs, phrase):
    with pytest.raises(XuxieError, match=phrase):
        tg.generate(prompt="a", **kwargs)


def test_unknown_prompt_chars(tg):
    with pytest.warns(XuxieWarning, match="never saw in training, read as unknown: '宝' '玉'"):
        text = tg.generate(prompt="宝玉", max_new_tokens=5)[0]
    assert text.startswith("宝玉")  # the user's prompt, not the decoded <unk>s


def test_assembler_holds_back_possible_stop_prefix(tg):
    tok = tg.tokenizer
    a = TextAssembler(tok, stop=["END"])
    shown = ""
    for ch in "abcEN":
        a.push(tok.encode(ch)[0])
        shown += a.release()
    assert shown == "abc"  # "EN" might still become "END"
    a.push(tok.encode("D")[0])
    assert a.done and a.text == "abc"
    assert shown + a.release() == "abc"


def test_sample_draws_what_torch_multinomial_draws():
    """Our sampler skips multinomial's input checks but must draw the same tokens from the same seed."""
    from xuxie.decoding import sample

    torch.manual_seed(0)
    for seed in range(10):
        probs = torch.rand(4, 300) ** 4
        probs /= probs.sum(-1, keepdim=True)
        expected = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed))[:, 0]
        assert torch.equal(sample(probs, torch.Generator().manual_seed(seed)), expected)


def test_sample_refuses_a_row_with_nothing_left():
    from xuxie.decoding import sample
    from xuxie.errors import XuxieError

    probs = torch.full((2, 5), 0.2)
    probs[1] = float("nan")  # softmax of a row whose every score was -inf
    with pytest.raises(XuxieError, match="no token is left"):
        sample(probs, torch.Generator().manual_seed(0))
