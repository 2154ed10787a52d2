"""Byte-level BPE tokenizer: exact round trips on real corpora, byte-safe streaming, save/load, end to end."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import corpus_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xuxie.decoding import TextAssembler
from xuxie.errors import XuxieError
from xuxie.tokenizers import BPETokenizer, load_tokenizer, tokenizer_from_dict, train_tokenizer
from xuxie.tokenizers.base import BOS, EOS, PAD, SPECIALS, UNK
from xuxie.tokenizers.bpe import _byte_decoder

FFFD = "\ufffd"


@pytest.fixture(scope="module")
def hlm_text() -> str:
    return corpus_path("hongloumeng.txt").read_bytes().decode("utf-8").replace("\r\n", "\n")


@pytest.fixture(scope="module")
def shakespeare_bpe(shakespeare_text) -> BPETokenizer:
    return train_tokenizer("bpe", [shakespeare_text[:300_000]])


@pytest.fixture(scope="module")
def hlm_bpe(hlm_text) -> BPETokenizer:
    return train_tokenizer("bpe", [hlm_text[:300_000]])


def _byte_ids(tok: BPETokenizer, data: bytes) -> list[int]:
    """The ids of the single-byte tokens spelling ``data``."""
    to_char = {b: c for c, b in _byte_decoder().items()}
    return [tok.index[to_char[b]] for b in data]


def _stream(tok, ids) -> list[str]:
    dec = tok.stream_decoder()
    pieces = [dec.push(int(i)) for i in ids]
    pieces.append(dec.flush())
    return pieces


# --------------------------------------------------------------------------- training, vocabulary
def test_vocabulary_layout(hlm_bpe, shakespeare_bpe):
    for tok in (hlm_bpe, shakespeare_bpe):
        assert tok.kind == "bpe"
        assert tok.tokens[:4] == list(SPECIALS) and (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
        assert tok.vocab_size == 4000
        # all 256 bytes are tokens, so nothing is ever unknown
        assert len(_byte_ids(tok, bytes(range(256)))) == 256
        assert tok.unknown_chars("任何文字 any text 😀\x00") == []
    assert "Ġthe" in shakespeare_bpe.index  # English merges into words (with their leading space)
    assert hlm_bpe.decode(hlm_bpe.encode("宝玉")) == "宝玉" and len(hlm_bpe.encode("宝玉")) == 1


def test_vocab_size_option_and_cap(shakespeare_text):
    assert train_tokenizer("bpe", [shakespeare_text[:50_000]], vocab_size=500).vocab_size == 500
    # the API passes max_vocab to every tokenizer: it caps the BPE vocabulary too
    assert train_tokenizer("bpe", [shakespeare_text[:50_000]], vocab_size=900, max_vocab=600).vocab_size == 600
    with pytest.raises(XuxieError, match="at least 260"):
        train_tokenizer("bpe", [shakespeare_text[:10_000]], vocab_size=100)


# --------------------------------------------------------------------------- round trips
def test_round_trip_whole_shakespeare(shakespeare_bpe, shakespeare_text):
    ids = shakespeare_bpe.encode_array(shakespeare_text)
    assert ids.dtype == np.int32 and UNK not in ids
    assert len(ids) < len(shakespeare_text) / 3  # real subwords, not bytes
    assert shakespeare_bpe.decode(ids) == shakespeare_text


def test_round_trip_whole_hongloumeng(hlm_bpe, hlm_text):
    ids = hlm_bpe.encode_array(hlm_text)
    assert UNK not in ids
    assert len(ids) < len(hlm_text)  # merges go past single characters into words
    assert hlm_bpe.decode(ids) == hlm_text
    assert hlm_bpe.encode(hlm_text[:5000]) == hlm_bpe.encode_array(hlm_text[:5000]).tolist()


@pytest.mark.parametrize("text", [
    "", " ", "  leading spaces\n\n\ntrailing  \n", "\n", "\t\ttabs\tand\x0bvertical\x0cfeed", "a\rb\r\n",
    "全角标点：，。！？「」『』……——　全角空格", "emoji 😀👍🏽👨‍👩‍👧 and 🇨🇳", "<pad><unk><bos><eos> are plain text here",
    "\x00\x01\x7f\u0085\u2028\u2029", "Ġ Ċ ĉ", "مرحبا שלום नमस्ते こんにちは 안녕하세요", "x" * 100_000,
])
def test_round_trip_edge_cases(hlm_bpe, shakespeare_bpe, text):
    for tok in (hlm_bpe, shakespeare_bpe):
        ids = tok.encode(text)
        assert UNK not in ids and not any(i in (PAD, BOS, EOS) for i in ids)
        assert tok.decode(ids) == text
        assert "".join(_stream(tok, ids)) == text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text())
def test_round_trip_property(hlm_bpe, text):
    assert hlm_bpe.decode(hlm_bpe.encode(text)) == text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_stream_property(hlm_bpe, text):
    pieces = _stream(hlm_bpe, hlm_bpe.encode(text))
    assert "".join(pieces) == text
    assert all(FFFD not in p for p in pieces) or FFFD in text


# --------------------------------------------------------------------------- byte-safe decoding
def test_decode_of_a_cut_character_does_not_crash(hlm_bpe):
    ids = _byte_ids(hlm_bpe, "贾".encode())  # three one-byte tokens
    assert hlm_bpe.decode(ids) == "贾"
    assert hlm_bpe.decode(ids[:2]) == FFFD  # ends inside the character: replaced, not an exception
    assert hlm_bpe.decode([BOS, *ids, EOS, PAD]) == "贾"
    assert hlm_bpe.decode([UNK]) == FFFD


def test_stream_decoder_holds_back_incomplete_characters(hlm_bpe):
    ids = _byte_ids(hlm_bpe, "贾宝玉".encode())
    pieces = _stream(hlm_bpe, ids)
    assert pieces == ["", "", "贾", "", "", "宝", "", "", "玉", ""]
    # a truly invalid tail shows as U+FFFD only at flush
    dec = hlm_bpe.stream_decoder()
    assert dec.push(ids[0]) == "" and dec.push(ids[1]) == ""
    assert dec.flush() == FFFD


def test_stream_decoder_on_real_chinese_ids(hlm_bpe, hlm_text):
    text = hlm_text[400_000:460_000]  # outside the tokenizer's training slice: rare characters get split
    ids = hlm_bpe.encode(text)
    partial = [i for i in ids if FFFD in hlm_bpe.piece(i)]
    assert partial, "expected some tokens that end inside a character"
    # token boundaries that split a character's bytes really occur in this sequence
    assert any(FFFD in hlm_bpe.decode(ids[:k]) for k in range(1, len(ids)))
    pieces = _stream(hlm_bpe, ids)
    assert all(FFFD not in p for p in pieces)
    assert "".join(pieces) == text == hlm_bpe.decode(ids)
    # the same through the generation-side assembler, releasing after every token
    a, out = TextAssembler(hlm_bpe), []
    for i in ids:
        a.push(i)
        out.append(a.release())
    a.finish()
    out.append(a.release())
    assert all(FFFD not in p for p in out) and "".join(out) == text


def test_piece_is_readable(shakespeare_bpe):
    i = shakespeare_bpe.index["Ġthe"]
    assert shakespeare_bpe.piece(i) == " the" and shakespeare_bpe.token_bytes(i) == b" the"
    assert shakespeare_bpe.piece(BOS) == "" and shakespeare_bpe.piece(UNK) == FFFD


# --------------------------------------------------------------------------- save / load
def test_save_load_identical(hlm_bpe, hlm_text, tmp_path):
    sample = hlm_text[600_000:700_000] + " English too, 😀"
    path = tmp_path / "tokenizer.json"
    hlm_bpe.save(path)
    for loaded in (load_tokenizer(path), tokenizer_from_dict(hlm_bpe.to_dict())):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.tokens == hlm_bpe.tokens
        assert np.array_equal(loaded.encode_array(sample), hlm_bpe.encode_array(sample))
        assert loaded.decode(loaded.encode(sample)) == sample


def test_damaged_file_is_a_clear_error(hlm_bpe):
    data = hlm_bpe.to_dict()
    with pytest.raises(XuxieError, match="damaged"):
        tokenizer_from_dict({**data, "hf_json": "not json"})
    with pytest.raises(XuxieError, match="damaged"):
        tokenizer_from_dict({k: v for k, v in data.items() if k != "hf_json"})
    with pytest.raises(XuxieError, match="damaged"):
        tokenizer_from_dict({**data, "tokens": data["tokens"][:-1]})


# --------------------------------------------------------------------------- end to end
def test_end_to_end_english(shakespeare_text):
    from xuxie import TextGenerator

    tg = TextGenerator.train(shakespeare_text[:60_000], tokenizer="bpe", vocab_size=1000, steps=5, seq_len=32, batch_size=8,
                             preview_length=0, progress=False, model_options={"hidden_size": 32})
    assert tg.tokenizer.kind == "bpe" and tg.tokenizer.vocab_size == 1000
    texts = tg.generate(2, prompt="ROMEO:", max_new_tokens=30, seed=1)
    assert len(texts) == 2 and all(isinstance(t, str) and t.startswith("ROMEO:") for t in texts)
    pieces = list(tg.stream(prompt="ROMEO:", max_new_tokens=30, seed=1))
    assert "".join(pieces) == tg.generate(1, prompt="ROMEO:", max_new_tokens=30, seed=1, include_prompt=False)[0]
    result = tg.evaluate(shakespeare_text[100_000:105_000])
    assert result["chars"] == 5000 and result["tokens"] < 5000 and result["unknown_chars"] == 0
    assert 0 < result["bits_per_char"] < 30


def test_end_to_end_chinese_streaming(hlm_text, tmp_path):
    from xuxie import TextGenerator

    out = tmp_path / "hlm_bpe"
    tg = TextGenerator.train(hlm_text[:60_000], tokenizer="bpe", vocab_size=800, out=out, steps=5, seq_len=32, batch_size=8,
                             preview_length=0, progress=False, model_options={"hidden_size": 32})
    reloaded = TextGenerator.load(out)
    assert reloaded.tokenizer.tokens == tg.tokenizer.tokens
    for seed in (0, 1):
        pieces = list(tg.stream(max_new_tokens=100, seed=seed))
        full = tg.generate(1, max_new_tokens=100, seed=seed)[0]
        assert "".join(pieces) == full
        assert reloaded.generate(1, max_new_tokens=100, seed=seed)[0] == full
        # An undertrained byte-level model would often pick bytes that are not UTF-8; decoding only
        # allows tokens that keep the text valid, so every streamed piece is whole text.
        assert pieces and all(FFFD not in p for p in pieces), pieces
        assert any("\u4e00" <= c <= "\u9fff" for c in full)
    # the same for several samples at once, greedy, and beam search
    for texts in (tg.generate(4, max_new_tokens=60, seed=2, temperature=1.5), tg.generate(1, max_new_tokens=60, temperature=0),
                  tg.generate(2, max_new_tokens=30, num_beams=3, temperature=0)):
        assert all(FFFD not in t for t in texts), texts
    result = tg.evaluate(hlm_text[200_000:203_000])
    assert result["chars"] == 3000 and result["unknown_chars"] == 0 and result["bits_per_char"] > 0
