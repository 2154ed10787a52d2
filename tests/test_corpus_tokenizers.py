"""Corpus reading (encodings, modes, folders, named corpora) and tokenizer round trips."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest
from conftest import corpus_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xuxie.corpus import corpus_from_text, decode_bytes, normalize_text, read_corpus
from xuxie.data import encode_corpus
from xuxie.errors import XuxieError, XuxieWarning
from xuxie.tokenizers import CharTokenizer, WordTokenizer, load_tokenizer, train_tokenizer
from xuxie.tokenizers.base import BOS, EOS, UNK
from xuxie.tokenizers.word import split_words


@pytest.fixture(scope="module")
def hlm_text() -> str:
    raw = corpus_path("hongloumeng.txt").read_bytes()
    assert b"\r\n" in raw  # the real file is CRLF: the reader must normalise it
    return raw.decode("utf-8").replace("\r\n", "\n")


def _encodable(text: str, encoding: str) -> str:
    out = []
    for c in text:
        try:
            c.encode(encoding)
        except UnicodeEncodeError:
            continue
        out.append(c)
    return "".join(out)


# --------------------------------------------------------------------------- encodings
@pytest.mark.parametrize("encoding", ["gbk", "gb18030", "big5", "utf-16-le", "utf-16-be", "utf-16", "utf-8-sig"])
def test_chinese_encodings_load_identically(hlm_text, tmp_path, encoding):
    """A GBK, Big5 or UTF-16 copy of a Chinese text reads exactly like the UTF-8 one, without --encoding."""
    text = _encodable(hlm_text[20_000:50_000], "big5" if encoding == "big5" else "gbk")
    utf8 = tmp_path / "utf8.txt"
    utf8.write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    other = tmp_path / f"{encoding}.txt"
    other.write_bytes(text.replace("\n", "\r\n").encode(encoding))
    a, b = read_corpus(utf8), read_corpus(other)
    assert b.documents == a.documents
    assert "\r" not in b.text and b.text == text
    assert a.encodings == ("utf-8",)


@pytest.mark.parametrize("encoding", ["gbk", "big5"])
@pytest.mark.parametrize("start", [0, 10_000, 123_456, 700_000, 1_500_000])
def test_short_chinese_excerpts_detected(hlm_text, encoding, start):
    """Detection holds for short texts too (a few lines), from anywhere in the novel."""
    text = _encodable(hlm_text[start:start + 300], encoding)
    decoded, _ = decode_bytes(text.encode(encoding))
    assert decoded == text


def test_latin_encodings(shakespeare_text):
    text = "Café, naïve — “quoted” résumé.\n" + shakespeare_text[:5000]
    assert decode_bytes(text.encode("cp1252"))[0] == text
    assert decode_bytes(text.encode("utf-16-le"))[0] == text


def test_utf8_with_a_bad_byte_keeps_its_chinese(hlm_text, tmp_path):
    """One invalid byte in a UTF-8 file: read as UTF-8 with U+FFFD there and one warning naming the
    count and the first offset, never re-read as Latin-1 (which turned the whole novel into mojibake)."""
    head, tail = hlm_text[:3_000].encode("utf-8"), hlm_text[3_000:20_000].encode("utf-8")
    path = tmp_path / "damaged.txt"
    path.write_bytes(head + b"\xff" + tail + b"\xfe\xfe")
    with pytest.warns(XuxieWarning, match=rf"UTF-8 with 3 invalid bytes \(the first at byte {len(head)}\)"):
        c = read_corpus(path)
    assert c.encodings == ("utf-8",)
    assert c.text.count("\ufffd") == 3
    assert c.text.replace("\ufffd", "") == normalize_text(hlm_text[:20_000])


def test_a_file_with_one_stray_high_byte_is_not_taken_for_damaged_utf8(shakespeare_text):
    """No real UTF-8 around the byte: encoding detection decides, not the damaged-UTF-8 rule."""
    data = (shakespeare_text[:5000] + "\nIt\u2019s done.\n").encode("cp1252")
    with warnings.catch_warnings():
        warnings.simplefilter("error", XuxieWarning)
        _, enc = decode_bytes(data)
    assert enc != "utf-8"


def test_cli_shows_the_damage_warning_as_one_line(hlm_text, tmp_path):
    import subprocess
    import sys

    path = tmp_path / "damaged.txt"
    good = hlm_text[:20_000].encode("utf-8")
    path.write_bytes(good[:500] + b"\xff" + good[500:])
    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "train", str(path), "--out", str(tmp_path / "m"), "--steps", "2",
                        "--hidden-size", "16", "--preview-length", "0", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "invalid byte" in line]
    assert len(lines) == 1 and lines[0].startswith("warning:") and "first at byte 500" in lines[0], r.stderr


def test_forced_encoding(hlm_text, tmp_path):
    text = _encodable(hlm_text[:3000], "gbk")
    path = tmp_path / "gbk.txt"
    path.write_bytes(text.encode("gbk"))
    c = read_corpus(path, encoding="gbk")
    assert c.text == text and c.encodings == ("gbk",)
    with pytest.raises(XuxieError, match="is not valid utf-8.*drop --encoding"):
        read_corpus(path, encoding="utf-8")
    with pytest.raises(XuxieError, match="unknown encoding 'klingon'"):
        read_corpus(path, encoding="klingon")


def test_binary_file_rejected(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    with pytest.raises(XuxieError, match="does not look like text"):
        read_corpus(path)


# --------------------------------------------------------------------------- modes, folders
def test_modes_and_split(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("first headline\r\n\r\n  second one  \r\nthird\n\n\nfourth\r\nfifth\n", encoding="utf-8")
    c = read_corpus(path, mode="lines")
    assert c.documents == ["first headline", "second one", "third", "fourth", "fifth"]
    train, val = c.split(0.2)
    assert train.documents == c.documents[:4] and val.documents == ["fifth"]
    ids = encode_corpus(val, CharTokenizer.train(c.documents))
    assert ids[0] == BOS and ids[-1] == EOS and len(ids) == len("fifth") + 2

    t = read_corpus(path, mode="text")
    assert len(t.documents) == 1 and "\r" not in t.text
    a, b = corpus_from_text("x" * 100).split(0.1)
    assert a.text + b.text == "x" * 100 and len(b.text) == 10
    with pytest.raises(XuxieError, match="too few to hold out"):
        corpus_from_text("only one line\n", mode="lines").split(0.1)
    with pytest.raises(XuxieError, match="unknown mode 'paragraphs'"):
        read_corpus(path, mode="paragraphs")


def test_folder_and_several_files(tmp_path):
    folder = tmp_path / "books"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n", encoding="utf-8")
    (folder / "sub" / "b.md").write_text("beta\n", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG\x00\x00")
    (folder / ".hidden.txt").write_text("secret\n", encoding="utf-8")
    c = read_corpus(folder, mode="lines")
    assert c.documents == ["alpha", "beta"] and len(c.sources) == 2
    c2 = read_corpus([folder / "a.txt", folder / "sub" / "b.md"], mode="lines")
    assert c2.documents == c.documents
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(XuxieError, match="holds no text files"):
        read_corpus(empty)


def test_empty_and_missing(tmp_path):
    blank = tmp_path / "blank.txt"
    blank.write_text("  \n\t\r\n  ", encoding="utf-8")
    with pytest.raises(XuxieError, match="empty or only whitespace"):
        read_corpus(blank)
    with pytest.raises(XuxieError, match="does not exist"):
        read_corpus(tmp_path / "nope.txt")
    with pytest.raises(XuxieError, match="empty or only whitespace"):
        corpus_from_text("   ")


# --------------------------------------------------------------------------- named corpora
def test_named_corpus_resolves_offline():
    c = read_corpus("tinyshakespeare")
    assert c.sources[0].endswith("tinyshakespeare.txt") and c.n_chars > 1_000_000


def test_named_corpus_download_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("XUXIE_DATA_DIR", str(tmp_path))

    def offline(*a, **k):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(XuxieError, match="could not download corpus 'tinyshakespeare'.*offline"):
        read_corpus("tinyshakespeare")

    class Fake(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Fake(b"not the real text"))
    with pytest.raises(XuxieError, match="SHA-256"):
        read_corpus("tinyshakespeare")
    assert list(tmp_path.iterdir()) == []  # no half-written or wrong file left behind

    monkeypatch.setenv("XUXIE_DATA_DIR", str(corpus_path("tinyshakespeare.txt").parent))
    real = corpus_path("tinyshakespeare.txt").read_bytes()
    monkeypatch.setenv("XUXIE_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: Fake(real))
    assert read_corpus("tinyshakespeare").n_chars > 1_000_000  # downloaded, checked, kept
    assert (tmp_path / "tinyshakespeare.txt").read_bytes() == real


# --------------------------------------------------------------------------- tokenizers
ENGLISH = st.text(alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ '’.,;:!?-\n\t0123456789")), max_size=300)
CHINESE = st.text(alphabet=st.sampled_from(list("宝玉黛钗凤姐贾母王夫人道：“”，。！？、笑说了一个不是的我你他她们来去这那里 \n")),
                  max_size=300)


@pytest.fixture(scope="module")
def en_tokenizers(shakespeare_text):
    extra = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ '’.,;:!?-\n\t0123456789"
    texts = [shakespeare_text[:200_000], extra]
    return CharTokenizer.train(texts), WordTokenizer.train(texts, max_vocab=3000)


@pytest.fixture(scope="module")
def zh_tokenizers(hlm_text):
    extra = "宝玉黛钗凤姐贾母王夫人道：“”，。！？、笑说了一个不是的我你他她们来去这那里 \n"
    texts = [hlm_text[:200_000], extra]
    return CharTokenizer.train(texts), WordTokenizer.train(texts, max_vocab=5000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=ENGLISH)
def test_roundtrip_english(en_tokenizers, text):
    for tok in en_tokenizers:
        assert tok.decode(tok.encode(text)) == text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=CHINESE)
def test_roundtrip_chinese(zh_tokenizers, text):
    for tok in zh_tokenizers:
        assert tok.decode(tok.encode(text)) == text


def test_roundtrip_real_text(hlm_text, shakespeare_text, zh_tokenizers, en_tokenizers):
    for toks, text in ((zh_tokenizers, hlm_text[:200_000]), (en_tokenizers, shakespeare_text[:200_000])):
        for tok in toks:
            assert tok.decode(tok.encode(text)) == text


def test_word_tokenizer_uses_jieba_and_keeps_everything(zh_tokenizers):
    pieces = split_words("宝玉笑道：“妹妹可曾读书？” Hello, world's 42 end.\n")
    assert "".join(pieces) == "宝玉笑道：“妹妹可曾读书？” Hello, world's 42 end.\n"
    assert "宝玉" in pieces and "妹妹" in pieces  # jieba words, not single characters
    assert "world's" in pieces and "42" in pieces and " " in pieces
    _, word = zh_tokenizers
    ids = word.encode("宝玉笑道")
    assert len(ids) < 4  # words, not characters


def test_min_freq_and_vocab_cap():
    char = CharTokenizer.train(["aaab"], min_freq=2)
    assert char.encode("ab") == [char.index["a"], UNK]
    assert char.unknown_chars("abz") == ["b", "z"]
    word = WordTokenizer.train(["the cat the dog the end, a cat"], max_vocab=20)
    assert word.vocab_size <= 20 and "the" in word.index and "cat" in word.index
    assert UNK in word.encode("the zebra") and word.unknown_chars("the zebra") == ["b", "r", "z"]
    capped = WordTokenizer.train(["alpha beta gamma alpha beta alpha"], max_vocab=4 + len(set("alpha beta gamma ")) + 1)
    assert "alpha" in capped.index and "gamma" not in capped.index  # the most frequent word fits, the rarest not
    assert capped.decode(capped.encode("gamma")) == "gamma"  # spelled out by characters


def test_tokenizer_save_load(tmp_path, zh_tokenizers):
    for tok in zh_tokenizers:
        path = tmp_path / f"{tok.kind}.json"
        tok.save(path)
        again = load_tokenizer(path)
        assert again.tokens == tok.tokens and type(again) is type(tok)
        assert again.encode("宝玉笑道：好") == tok.encode("宝玉笑道：好")
        assert json.loads(path.read_text(encoding="utf-8"))["kind"] == tok.kind
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(XuxieError, match="damaged"):
        load_tokenizer(bad)
    with pytest.raises(XuxieError, match="unknown tokenizer 'sentencepiece'"):
        train_tokenizer("sentencepiece", ["abc"])


def test_utf8_cut_inside_a_character_is_still_utf8(tmp_path):
    """A file cut with ``head -c`` in the middle of a character is UTF-8 minus the partial char,
    not a legacy encoding."""
    from xuxie.corpus import decode_bytes

    data = "宝玉听了，忙起身。".encode()
    for cut in (1, 2):
        text, enc = decode_bytes(data[:-cut])
        assert enc == "utf-8" and text == "宝玉听了，忙起身"
    text, enc = decode_bytes("宝玉".encode() + b"\xff" + "了".encode())  # a real error elsewhere is not hidden
    assert enc != "utf-8"
