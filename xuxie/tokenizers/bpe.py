"""Byte-level BPE tokenizer trained on the corpus with HF ``tokenizers``.

Text is UTF-8 bytes; the 256 bytes are the base tokens and BPE merges frequent byte pairs into
subwords (English words, Chinese characters and words). Every text is representable, so
``<unk>`` is never needed and ``decode(encode(x)) == x`` for any text. A token may end in the
middle of a character's bytes, so decoding works on bytes: :class:`ByteStreamDecoder` holds
back an incomplete trailing character until its last byte arrives.

Vocabulary size: ``vocab_size`` (default 4000), capped by ``max_vocab``; at least 260
(4 specials + 256 bytes). ``min_freq`` is the least number of times a pair must occur to merge.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

import numpy as np

from ..chars import neutral_cut
from ..errors import XuxieError
from .base import SPECIALS, UNK, StreamDecoder, Tokenizer

DEFAULT_VOCAB = 4000
MIN_VOCAB = len(SPECIALS) + 256
_CHUNK = 32_768  # characters per piece handed to the Rust encoder (cut where the pre-tokenizer splits anyway)


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's byte → printable character table used by the ByteLevel pre-tokenizer."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _chunks(text: str, size: int = _CHUNK) -> Iterator[str]:
    """``text`` in pieces of about ``size`` characters, each cut where the pre-tokenizer splits
    anyway (:func:`~xuxie.chars.neutral_cut`): the pieces encode, and train, exactly as the
    whole text would."""
    start, n = 0, len(text)
    while start < n:
        cut = neutral_cut(text, start + size) if n - start > size else None
        if cut is None:
            yield text[start:]
            return
        yield text[start:cut]
        start = cut


def _hf_tokenizer():
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers

    tk = HFTokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tk.decoder = decoders.ByteLevel()
    return tk


class ByteStreamDecoder(StreamDecoder):
    """Emits text as soon as it is complete UTF-8; an incomplete trailing character waits for
    its remaining bytes. Invalid bytes become U+FFFD (at once, or at :meth:`flush`)."""

    def __init__(self, tokenizer: BPETokenizer):
        super().__init__(tokenizer)
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._dec.decode(self.tokenizer.token_bytes(token_id), final=False)

    def flush(self, drop_incomplete: bool = False) -> str:
        if drop_incomplete:
            self._dec.reset()
            return ""
        out = self._dec.decode(b"", final=True)
        self._dec.reset()
        return out


class BPETokenizer(Tokenizer):
    """Byte-level BPE. ``tokens`` are the vocabulary in id order, in the ByteLevel alphabet
    (``Ġ`` is a space); ``hf_json`` is the serialized HF tokenizer (model and merges)."""

    kind = "bpe"

    def __init__(self, tokens: list[str], hf_json: str | None = None, requested_vocab: int = DEFAULT_VOCAB, min_freq: int = 1):
        super().__init__(tokens)
        if not isinstance(hf_json, str):
            raise XuxieError("BPE tokenizer file has no serialized tokenizer ('hf_json'); the model directory is damaged")
        from tokenizers import Tokenizer as HFTokenizer

        try:
            self._hf = HFTokenizer.from_str(hf_json)
        except Exception as e:  # noqa: BLE001 - any parse error means a damaged file
            raise XuxieError(f"BPE tokenizer file is damaged ({e}); retrain or restore the model directory") from None
        if self._hf.get_vocab_size(with_added_tokens=True) != len(self.tokens):
            raise XuxieError("BPE tokenizer file is damaged: its token list and its serialized vocabulary differ")
        self.hf_json = hf_json
        self.requested_vocab = requested_vocab
        self.min_freq = min_freq
        table = _byte_decoder()
        self._bytes: list[bytes] = [b""] * len(SPECIALS) + [bytes(table[c] for c in t) for t in self.tokens[len(SPECIALS):]]
        self._bytes[UNK] = "\ufffd".encode()

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int | None = None, max_vocab: int | None = None,
              min_freq: int = 1, **_: Any) -> BPETokenizer:
        """``vocab_size`` defaults to 4000 and is capped by ``max_vocab`` (the API passes its
        ``max_vocab`` to every tokenizer); the result may be smaller when the text has fewer pairs."""
        from tokenizers import pre_tokenizers, trainers

        size = DEFAULT_VOCAB if vocab_size is None else int(vocab_size)
        if max_vocab is not None:
            size = min(size, int(max_vocab))
        if size < MIN_VOCAB:
            raise XuxieError(f"a byte-level BPE vocabulary needs at least {MIN_VOCAB} tokens (4 special + 256 bytes), got {size}")
        trainer = trainers.BpeTrainer(
            vocab_size=size, min_frequency=max(0, int(min_freq)), special_tokens=list(SPECIALS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        trained = _hf_tokenizer()
        trained.train_from_iterator((c for t in texts for c in _chunks(t)), trainer=trainer)
        vocab = trained.get_vocab(with_added_tokens=True)
        tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise XuxieError("BPE training produced a vocabulary with gaps in its ids")
        # Rebuild without "added tokens": the specials keep ids 0-3 but text such as "<pad>" is
        # then just text, encoded byte by byte, instead of silently turning into a special token.
        data = json.loads(trained.to_str())
        data["added_tokens"] = []
        hf_json = json.dumps(data, ensure_ascii=False)
        return cls(tokens, hf_json=hf_json, requested_vocab=size, min_freq=min_freq)

    # -- encoding ----------------------------------------------------------------------------
    def encode_array(self, text: str) -> np.ndarray:
        if not text:
            return np.zeros(0, dtype=np.int32)
        chunks = list(_chunks(text))
        if len(chunks) == 1:
            return np.asarray(self._hf.encode(text, add_special_tokens=False).ids, dtype=np.int32)
        encs = self._hf.encode_batch(chunks, add_special_tokens=False)
        return np.concatenate([np.asarray(e.ids, dtype=np.int32) for e in encs])

    def encode(self, text: str) -> list[int]:
        return self.encode_array(text).tolist()

    def unknown_chars(self, text: str) -> list[str]:
        return []  # every byte is a token

    # -- decoding ----------------------------------------------------------------------------
    def token_bytes(self, token_id: int) -> bytes:
        """The UTF-8 bytes of a token (empty for ``<pad> <bos> <eos>``; U+FFFD for ``<unk>``)."""
        return self._bytes[token_id]

    def piece(self, token_id: int) -> str:
        """A token shown as text on its own (a partial character shows as U+FFFD); use
        :meth:`decode` or :meth:`stream_decoder` to turn a sequence back into text."""
        return self._bytes[token_id].decode("utf-8", errors="replace")

    def decode(self, ids: Iterable[int]) -> str:
        b = self._bytes
        return b"".join(b[int(i)] for i in ids).decode("utf-8", errors="replace")

    def stream_decoder(self) -> ByteStreamDecoder:
        return ByteStreamDecoder(self)

    def _extra(self) -> dict[str, Any]:
        return {"requested_vocab": self.requested_vocab, "min_freq": self.min_freq, "hf_json": self.hf_json}
