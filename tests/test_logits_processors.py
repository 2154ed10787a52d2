"""A user's own logits processors, and decoding options given HF style (a config and overrides).

The processors reach every decoding path of ``TextGenerator``: sampling (``generate``), streaming
(``stream``), beam search (``generate`` with ``num_beams > 1`` and ``nbest``) and ``continue_text``.
"""

from __future__ import annotations

import pytest
import torch

from xuxie import GenerationConfig, XuxieError
from xuxie.decoding import LogitsProcessor

BANNED = "e"  # the commonest letter of English: the model writes it often unless told not to


class BanToken(LogitsProcessor):
    """Never produce one token: its score becomes -inf."""

    def __init__(self, token_id: int):
        self.token_id = token_id
        self.calls = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        scores[:, self.token_id] = float("-inf")
        return scores


@pytest.fixture(scope="module")
def tg(small_shakespeare_model):
    return small_shakespeare_model


@pytest.fixture()
def ban(tg) -> BanToken:
    (token_id,) = tg.tokenizer.encode(BANNED)
    return BanToken(token_id)


SAMPLING = dict(max_new_tokens=200, temperature=1.0, seed=11)
BEAMS = dict(max_new_tokens=80, num_beams=3, temperature=0)


def test_sampling_through_generate(tg, ban):
    plain = tg.generate(3, "ROMEO:", include_prompt=False, **SAMPLING)
    banned = tg.generate(3, "ROMEO:", include_prompt=False, logits_processors=[ban], **SAMPLING)
    assert BANNED in "".join(plain)
    assert all(BANNED not in text and len(text) > 100 for text in banned), banned
    assert ban.calls > 0


def test_streaming(tg, ban):
    plain = "".join(tg.stream("ROMEO:", **SAMPLING))
    banned = "".join(tg.stream("ROMEO:", logits_processors=[ban], **SAMPLING))
    assert BANNED in plain
    assert BANNED not in banned and len(banned) > 100


def test_beam_search(tg, ban):
    plain = tg.generate(1, "KING", include_prompt=False, **BEAMS)[0]
    banned = tg.generate(1, "KING", include_prompt=False, logits_processors=[ban], **BEAMS)[0]
    assert BANNED in plain
    assert BANNED not in banned and banned.strip(), banned
    best = tg.nbest("KING", 3, max_new_tokens=40, logits_processors=[ban])
    assert len(best) == 3 and all(BANNED not in text for text, _, _ in best)


def test_continue_text(tg, ban):
    written = tg.continue_text("ROMEO:\n", 2, logits_processors=[ban], **SAMPLING)
    assert written and BANNED not in written


def test_user_processors_run_before_top_p(tg, ban):
    """A banned token is taken out before top-p keeps its most likely few, so a tight top-p never
    leaves nothing to sample (HF transformers' order: processors, then the sampling warpers)."""
    texts = tg.generate(4, "ROMEO:", include_prompt=False, top_p=0.05, logits_processors=[ban], **SAMPLING)
    assert all(BANNED not in text for text in texts)


def test_generation_config_is_copied_then_updated(tg):
    config = GenerationConfig(temperature=0, max_new_tokens=30)
    with_config = tg.generate(1, "ROMEO:", generation_config=config, max_new_tokens=12)
    assert config.max_new_tokens == 30  # the caller's config is not changed
    assert with_config == tg.generate(1, "ROMEO:", temperature=0, max_new_tokens=12)
    assert tg.generation_config.max_new_tokens == 200 and tg.generation_config.temperature == 1.0


@pytest.mark.parametrize("call", [
    lambda tg: tg.generate(1, "ROMEO:", temprature=0.5),
    lambda tg: tg.stream("ROMEO:", temprature=0.5),
    lambda tg: tg.continue_text("ROMEO:", temprature=0.5),
    lambda tg: tg.nbest("ROMEO:", 2, temprature=0.5),
])
def test_unknown_option_is_one_clear_error(tg, call):
    with pytest.raises(XuxieError) as caught:
        call(tg)
    message = str(caught.value)
    assert "unknown decoding option(s): temprature (did you mean temperature?)" in message
    assert "valid options: max_new_tokens, temperature, top_k, top_p" in message
    assert "\n" not in message
