"""What a corpus is made of: absolute source paths with each file's SHA-256; a folder is read
without hidden and temporary files, without xuxie's own folders (a training run's output inside
the corpus folder) and without what the caller excludes; a binary file in a folder is skipped with
one warning, a binary file named directly is an error."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from xuxie.corpus import NAMED_CORPORA, Corpus, continuation_pairs, corpus_from_text, read_corpus, read_labelled, read_pairs
from xuxie.errors import XuxieError, XuxieWarning
from xuxie.fileio import EXPORT_FORMAT, MODEL_FORMAT

BINARY = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def read_quietly(*args, **kwargs) -> tuple[Corpus, list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        corpus = read_corpus(*args, **kwargs)
    return corpus, [w for w in caught if issubclass(w.category, XuxieWarning)]


# --------------------------------------------------------------------------- sources and hashes
def test_sources_are_absolute_with_the_hash_of_the_bytes_read(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = write(tmp_path / "a.txt", "\ufeffalpha\r\nbeta\r\n".encode())  # hashed as on disk, not as normalised
    b = write(tmp_path / "sub" / "b.txt", "gamma")
    c = read_corpus(["a.txt", "sub"], "lines")
    assert c.sources == (str(a), str(b)) and all(Path(s).is_absolute() for s in c.sources)
    assert c.source_hashes == (sha256(a), sha256(b))
    assert c.documents == ["alpha", "beta", "gamma"]


def test_named_corpus_resolves_to_its_file_and_hash():
    c = read_corpus("tinyshakespeare")
    path = Path(c.sources[0])
    assert path.is_absolute() and path.name == "tinyshakespeare.txt" and path.is_file()
    assert c.source_hashes == (NAMED_CORPORA["tinyshakespeare"][2],)


def test_hashes_follow_the_corpus_through_every_reader_and_split(tmp_path):
    text = write(tmp_path / "novel.txt", "one.\n\ntwo.\n\nthree.\n\nfour.\n")
    pairs = write(tmp_path / "p.tsv", "a\tb\nc\td\ne\tf\n")
    table = write(tmp_path / "t.csv", "text,label\nhello there,x\ngood bye,y\n")
    for corpus, path in [(read_corpus(text, "text"), text), (read_corpus(text, "continuation"), text),
                         (read_corpus(pairs, "pairs"), pairs), (read_pairs(pairs), pairs),
                         (read_labelled(table, "label"), table), (continuation_pairs(read_corpus(text)), text)]:
        assert corpus.sources == (str(path),) and corpus.source_hashes == (sha256(path),)
        for part in (*corpus.split(0.4), *corpus.split(0.0)):
            assert part.sources == corpus.sources and part.source_hashes == corpus.source_hashes
    lines = read_corpus(text, "lines")
    for part in (*lines.split(0.25), *lines.split(0.0)):
        assert part.sources == (str(text),) and part.source_hashes == (sha256(text),)


def test_a_string_corpus_records_the_hash_of_its_text():
    for mode in ("text", "lines", "continuation"):
        c = corpus_from_text("one.\ntwo.\nthree.", mode)
        assert c.sources == ("<text>",) and c.source_hashes == (hashlib.sha256(b"one.\ntwo.\nthree.").hexdigest(),)


# --------------------------------------------------------------------------- what a folder holds
def model_folder(path: Path, marker: dict) -> Path:
    write(path / "config.json", json.dumps(marker))
    write(path / "samples.md", "samples the model wrote")
    write(path / "log.jsonl", '{"step": 1}\n')
    write(path / "checkpoints" / "notes.txt", "inside the run")
    return path


def test_folder_skips_xuxie_folders_hidden_and_temporary_files(tmp_path):
    corpus = tmp_path / "corpus"
    mine = write(corpus / "a.txt", "the user's text")
    user_json = write(corpus / "data" / "config.json", '{"mine": true}')  # no xuxie marker: the user's
    model_folder(corpus / "run", {"format": MODEL_FORMAT})
    model_folder(corpus / "deep" / "export", {"xuxie_export": {"format": EXPORT_FORMAT}})
    write(corpus / ".git" / "HEAD.txt", "hidden folder")
    write(corpus / ".notes.txt", "hidden file")
    write(corpus / ".a.txt.tmp", "a temporary file of an atomic write")
    c, caught = read_quietly(corpus, "lines")
    assert c.sources == (str(mine), str(user_json)) and not caught


def test_exclude_leaves_out_files_and_folders_inside_a_folder(tmp_path):
    corpus = tmp_path / "corpus"
    mine = write(corpus / "a.txt", "the user's text")
    write(corpus / "run" / "samples.md", "an output folder that has no config.json yet")
    skipped = write(corpus / "b.txt", "left out by name")
    c = read_corpus(corpus, exclude=[corpus / "run", str(skipped)])
    assert c.sources == (str(mine),)
    assert read_corpus(skipped, exclude=[skipped]).sources == (str(skipped),)  # a file named directly is read
    pairs = tmp_path / "pairs"
    tsv = write(pairs / "p.tsv", "a\tb\n")
    write(pairs / "run" / "samples.md", "not a pairs file: read, it would be an error")
    for corpus in (read_pairs(pairs, exclude=[pairs / "run"]), read_corpus(pairs, "pairs", exclude=[pairs / "run"]),
                   read_labelled(write(pairs / "t.tsv", "text\tlabel\nhi\tx\n").parent, "label", exclude=[pairs / "run", tsv])):
        assert str(pairs / "run" / "samples.md") not in corpus.sources


def test_a_xuxie_folder_is_not_a_corpus(tmp_path):
    run = model_folder(tmp_path / "run", {"format": MODEL_FORMAT})
    with pytest.raises(XuxieError, match="is a xuxie model directory, not a corpus"):
        read_corpus(run)


# --------------------------------------------------------------------------- binary files
def test_binary_files_in_a_folder_are_skipped_with_one_warning(tmp_path):
    corpus = tmp_path / "corpus"
    mine = write(corpus / "a.txt", "the user's text")
    for name in ("b.txt", "c", "d.md", "e.json"):
        write(corpus / name, BINARY)
    c, caught = read_quietly(corpus)
    assert c.sources == (str(mine),)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 4 file(s)" in message and "do not look like text" in message
    assert str(corpus / "b.txt") in message and str(corpus / "e.json") not in message and "…" in message


def test_a_binary_file_named_directly_is_an_error(tmp_path):
    path = write(tmp_path / "image.txt", BINARY)
    with pytest.raises(XuxieError, match="does not look like text"):
        read_corpus(path)
    with pytest.raises(XuxieError, match="does not look like text"):
        read_corpus([path, write(tmp_path / "folder" / "a.txt", "text")])


def test_a_folder_of_only_binary_files_is_one_error(tmp_path):
    corpus = tmp_path / "corpus"
    write(corpus / "a.tsv", BINARY)
    write(corpus / "b.tsv", BINARY)
    for reader in (lambda: read_corpus(corpus), lambda: read_pairs(corpus)):
        with pytest.raises(XuxieError, match="holds no text") as e:
            reader()
        assert "\n" not in str(e.value)


def test_corpus_module_does_not_import_torch():
    """Reading a corpus needs no tensors: xuxie.corpus loads without the package's torch-heavy __init__."""
    package = Path(__file__).resolve().parents[1] / "xuxie"
    code = ("import sys, types; p = types.ModuleType('xuxie'); p.__path__ = [sys.argv[1]]; sys.modules['xuxie'] = p; "
            "import xuxie.corpus; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(package)], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


# --------------------------------------------------------------------------- the CLI
def test_training_inside_the_corpus_folder_does_not_read_its_own_output(tmp_path, shakespeare_text):
    """``xuxie train FOLDER --out FOLDER/run`` twice: the second run reads only the user's text, not
    the first run's config.json, log.jsonl and samples.md."""
    corpus = tmp_path / "corpus"
    mine = write(corpus / "a.txt", shakespeare_text[:20_000])
    configs = []
    for out in ("run", "run2"):
        proc = subprocess.run([sys.executable, "-m", "xuxie", "train", str(corpus), "--out", str(corpus / out), "--steps", "2",
                               "--hidden-size", "16", "--seq-len", "32", "--batch-size", "8", "--preview-length", "0", "-q"],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr.lower(), proc.stderr
        configs.append(json.loads((corpus / out / "config.json").read_text(encoding="utf-8"))["corpus"])
    assert [c["sources"] for c in configs] == [[str(mine)], [str(mine)]]
    assert configs[0]["sha256"] == configs[1]["sha256"]
