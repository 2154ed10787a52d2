"""Corpora larger than memory: files read in pieces give exactly what reading them whole gives, a
second run reads its tokenizer and token ids from the cache, and a damaged cache, an unwritable
one or a file that stops being its encoding halfway is handled in one clear way."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from conftest import assert_clear_error, corpus_path, run

import xuxie.corpus.stream as stream
from xuxie import TextGenerator, XuxieError, XuxieWarning
from xuxie.cache import CACHE_ENV, cached_ids, cached_tokenizer, streamed_corpus
from xuxie.corpus import read_corpus
from xuxie.corpus.sources import expand_paths
from xuxie.data import IdsFile, encode_corpus
from xuxie.tokenizers import train_tokenizer

TINY = {"steps": 2, "seq_len": 32, "batch_size": 4, "eval_interval": 2, "preview_length": 0, "progress": False,
        "model_options": {"hidden_size": 16}}


@pytest.fixture
def small_pieces(monkeypatch):
    """Blocks of 16 KB and pieces of 5,000 characters: every file below is streamed in many pieces."""
    monkeypatch.setattr(stream, "BLOCK", 1 << 14)
    monkeypatch.setattr(stream, "PIECE", 5000)


@pytest.fixture
def corpus_folder(tmp_path):
    """Chinese with CRLF cut inside its last character, English, a file of only whitespace,
    GB18030 Chinese and one headline per line."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    hlm = corpus_path("hongloumeng.txt").read_bytes()
    (folder / "a_hlm.txt").write_bytes(hlm[:300_001])
    (folder / "b_shakespeare.txt").write_bytes(corpus_path("tinyshakespeare.txt").read_bytes()[:200_000])
    (folder / "c_blank.txt").write_text("  \n\n \t\n")
    (folder / "d_gb.txt").write_bytes(hlm[:120_000].decode("utf-8", "ignore").encode("gb18030"))
    (folder / "e_headlines.txt").write_bytes(corpus_path("hacker_news_2000.txt").read_bytes())
    return folder


@pytest.mark.parametrize("mode", ["text", "lines"])
@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_a_streamed_corpus_gives_what_the_corpus_read_whole_gives(small_pieces, corpus_folder, mode, kind):
    whole = read_corpus(corpus_folder, mode)
    streamed = streamed_corpus(expand_paths(corpus_folder), mode, None)
    assert streamed.encodings == whole.encodings and "gb18030" in streamed.encodings
    assert (streamed.fingerprint(), streamed.n_chars, streamed.n_documents) == (whole.fingerprint(), whole.n_chars, len(whole.documents))

    train_part, val_part = whole.split(0.1)
    options = {"kind": kind, "min_freq": 1, "max_vocab": 20000, "vocab_size": None}
    tokenizer = train_tokenizer(texts=train_part.documents, **options)
    assert cached_tokenizer(streamed, options, 0.1).to_dict() == tokenizer.to_dict()

    train_ids, val_ids, val_chars = cached_ids(streamed, tokenizer, 0.1)
    assert isinstance(train_ids, IdsFile) and train_ids.dtype == np.uint16
    np.testing.assert_array_equal(train_ids, encode_corpus(train_part, tokenizer))
    np.testing.assert_array_equal(val_ids, encode_corpus(val_part, tokenizer))
    assert val_chars == sum(len(d) + (mode == "lines") for d in val_part.documents)


def _shakespeare_file(tmp_path, size=300_000):
    path = tmp_path / "shakespeare.txt"
    path.write_bytes(corpus_path("tinyshakespeare.txt").read_bytes()[:size])
    return path


def test_a_second_run_reads_the_scan_the_tokenizer_and_the_ids_from_the_cache(tmp_path, monkeypatch):
    path = _shakespeare_file(tmp_path)
    first = TextGenerator.train(path, out=tmp_path / "m1", **TINY)

    def never(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    import xuxie.cache

    for name in ("scan_files", "train_tokenizer", "streamed_ids"):
        monkeypatch.setattr(xuxie.cache, name, never)
    second = TextGenerator.train(path, out=tmp_path / "m2", **TINY)
    assert second.tokenizer.to_dict() == first.tokenizer.to_dict()
    assert second.config["results"]["final_val_loss"] == pytest.approx(first.config["results"]["final_val_loss"])


def _ids_files(cache_root):
    (record,) = cache_root.glob("corpora/*/ids-*.json")
    return record, record.with_suffix(".train")


def test_a_truncated_cache_or_one_from_another_tokenizer_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    path = _shakespeare_file(tmp_path)
    corpus = streamed_corpus(expand_paths(path), "text", None)
    tokenizer = train_tokenizer("char", [path.read_text()])
    expected = np.array(cached_ids(corpus, tokenizer, 0.1)[0])
    record, train_file = _ids_files(tmp_path / "cache")

    train_file.write_bytes(train_file.read_bytes()[:1000])  # a disk that filled up, a copy cut short
    with pytest.warns(XuxieWarning, match="truncated.*rebuilding"):
        np.testing.assert_array_equal(cached_ids(corpus, tokenizer, 0.1)[0], expected)

    meta = json.loads(record.read_text())
    record.write_text(json.dumps({**meta, "tokenizer": "0" * 64}))
    with pytest.warns(XuxieWarning, match="another tokenizer.*rebuilding"):
        np.testing.assert_array_equal(cached_ids(corpus, tokenizer, 0.1)[0], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rebuilt: read back silently
        np.testing.assert_array_equal(cached_ids(corpus, tokenizer, 0.1)[0], expected)


def test_a_cache_that_cannot_be_written_warns_and_training_goes_on(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    with pytest.warns(XuxieWarning, match="cannot write the corpus cache"):
        tg = TextGenerator.train(_shakespeare_file(tmp_path), out=tmp_path / "m", **TINY)
    assert tg.config["results"]["steps"] == 2
    assert blocker.read_text() == "a file where the cache folder would go"


def test_a_byte_that_breaks_the_detected_encoding_after_the_sample_is_one_clear_error(small_pieces, tmp_path):
    path = tmp_path / "damaged.txt"
    text = corpus_path("hongloumeng.txt").read_text(encoding="utf-8")[:30_000]
    before = text[:15_000].encode("utf-8")  # over 16 KB: past the block the encoding is detected on
    path.write_bytes(before + b"\xff\xfe" + text[15_000:].encode("utf-8"))
    out = tmp_path / "m"
    result = run("train", path, "--out", out, "--steps", "2", "--hidden-size", "16", "--preview-length", "0", "-q")
    assert_clear_error(result, f"not valid utf-8 at byte {len(before):,}", "--encoding")
    assert not out.exists()


def test_evaluating_a_file_in_pieces_scores_what_evaluating_its_text_scores(small_pieces, small_shakespeare_model, tmp_path):
    path = tmp_path / "heldout.txt"
    text = corpus_path("tinyshakespeare.txt").read_text()[-60_000:]
    path.write_text(text)
    whole = small_shakespeare_model.evaluate(text)
    streamed = small_shakespeare_model.evaluate_file(path, progress=False)
    assert streamed["tokens"] == whole["tokens"] and streamed["chars"] == whole["chars"]
    assert streamed["loss"] == pytest.approx(whole["loss"], rel=1e-5)


def test_bf16_where_the_cpu_has_no_fast_bf16_is_a_clear_error(tmp_path, monkeypatch):
    import torch

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    out = tmp_path / "m"
    result = run("train", _shakespeare_file(tmp_path), "--out", out, "--steps", "2", "--precision", "bf16", "-q")
    assert_clear_error(result, "--precision bf16 needs AVX-512 bf16 or AMX", "auto or fp32")
    assert not out.exists()


def test_a_corpus_of_only_whitespace_files_is_one_clear_error(tmp_path):
    folder = tmp_path / "blank"
    folder.mkdir()
    (folder / "a.txt").write_text(" \n\t\n")
    with pytest.raises(XuxieError, match="empty or only whitespace"):
        TextGenerator.train(folder, out=tmp_path / "m", **TINY)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_labelled_table_streamed_gives_the_ids_of_the_table_read_whole(small_pieces, tmp_path, suffix):
    import csv

    from xuxie.cache import streamed_table
    from xuxie.corpus import read_labelled
    from xuxie.data import Labelling

    en = corpus_path("tinyshakespeare.txt").read_text().split("\n\n")[:600]
    zh = [p for p in corpus_path("hongloumeng.txt").read_text(encoding="utf-8").split("\n") if p.strip()][:400]
    rows = [{"text": t, "label": lab} for pair in zip(en, zh) for t, lab in zip(pair, ("en", "zh"))]
    rows[5]["label"] = ""  # an unlabelled row; texts hold line breaks inside quoted CSV fields
    path = tmp_path / f"labelled{suffix}"
    with open(path, "w", encoding="utf-8", newline="") as f:
        if suffix == ".csv":
            writer = csv.DictWriter(f, ["label", "text"])
            writer.writeheader()
            writer.writerows(rows)
        else:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    whole = read_labelled(path, "label")
    streamed = streamed_table(expand_paths(path), "text", "label", None)
    assert (streamed.fingerprint(), streamed.n_documents, streamed.label_names) == (whole.fingerprint(), len(whole.documents), ["en", "zh"])
    train_part, val_part = whole.split(0.1)
    tokenizer = train_tokenizer("char", train_part.documents)
    labelling = Labelling({"en": tokenizer.vocab_size, "zh": tokenizer.vocab_size + 1}, dropout=0.1, seed=3)
    train_ids, val_ids, _ = cached_ids(streamed, tokenizer, 0.1, labelling)
    np.testing.assert_array_equal(train_ids, encode_corpus(train_part, tokenizer, labelling))
    from dataclasses import replace

    np.testing.assert_array_equal(val_ids, encode_corpus(val_part, tokenizer, replace(labelling, dropout=0.0)))
    assert (np.asarray(train_ids) == tokenizer.vocab_size).sum() > 100  # labels really are in the ids


def test_the_scan_of_a_folder_with_a_binary_file_is_read_back_too(tmp_path, monkeypatch):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_bytes(corpus_path("tinyshakespeare.txt").read_bytes()[:50_000])
    (folder / "b.txt").write_bytes(bytes(range(256)) * 64)  # not text: skipped with a warning
    with pytest.warns(XuxieWarning, match="skipped 1 file"):
        first = streamed_corpus(expand_paths(folder), "text", None)
    import xuxie.cache

    monkeypatch.setattr(xuxie.cache, "scan_files", lambda *a, **k: pytest.fail("the scan should come from the cache"))
    second = streamed_corpus(expand_paths(folder), "text", None)
    assert second.sources == first.sources == (str(folder / "a.txt"),)
    assert second.fingerprint() == first.fingerprint()
