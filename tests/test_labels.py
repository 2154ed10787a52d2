"""Context labels: a lines corpus from CSV/TSV/JSONL with a label column; generate --context LABEL."""

from __future__ import annotations

import csv
import json
import unicodedata

import pytest
from conftest import assert_clear_error, corpus_path, run
from typer.testing import CliRunner

from xuxie import TextGenerator, XuxieError
from xuxie.cli import app
from xuxie.corpus import read_labelled


def _lines(name: str, n: int, skip: int) -> list[str]:
    text = corpus_path(name).read_text(encoding="utf-8").replace("\r\n", "\n")
    lines = [ln.strip() for ln in text.split("\n") if len(ln.strip()) >= 12]
    return lines[skip:skip + n]


@pytest.fixture(scope="module")
def bilingual_csv(tmp_path_factory):
    en, zh = _lines("tinyshakespeare.txt", 1500, 500), _lines("hongloumeng.txt", 1500, 200)
    rows = [{"lang": "en", "text": t} for t in en] + [{"lang": "zh", "text": t[:80]} for t in zh]
    import random

    random.Random(0).shuffle(rows)
    path = tmp_path_factory.mktemp("labels") / "bilingual.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["lang", "text"])
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def bilingual_model(bilingual_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("labels_model") / "m"
    return TextGenerator.train(bilingual_csv, out=out, label_column="lang", steps=250, seq_len=64, batch_size=32,
                               lr=5e-3, eval_interval=250, preview_length=0, progress=False,
                               model_options={"hidden_size": 128})


def _script(text: str) -> str:
    han = sum("\u4e00" <= c <= "\u9fff" for c in text)
    latin = sum(c.isascii() and c.isalpha() for c in text)
    return "zh" if han > latin else "en" if latin > han else "?"


def test_context_label_steers_the_script(bilingual_model):
    tg = bilingual_model
    assert tg.labels == ["en", "zh"] and tg.mode == "lines"
    for label in ("en", "zh"):
        texts = tg.generate(40, temperature=0.8, max_new_tokens=60, seed=1, context=label)
        right = sum(_script(t) == label for t in texts)
        assert right >= 38, (label, right, texts[:5])  # at least 95%
    # unlabelled generation still works and writes whole documents
    plain = tg.generate(10, temperature=0.8, max_new_tokens=60, seed=2)
    assert all(t.strip() for t in plain)
    # reload: labels come from config.json
    again = TextGenerator.load(tg.path)
    assert again.generate(3, temperature=0.5, max_new_tokens=40, seed=3, context="zh") == \
        tg.generate(3, temperature=0.5, max_new_tokens=40, seed=3, context="zh")


def test_cli_context(bilingual_model):
    r = run("generate", bilingual_model.path, "--context", "zh", "-n", "3", "--seed", "0", "--max-new-tokens", "40")
    assert r.exit_code == 0
    assert sum(unicodedata.name(c, "").startswith("CJK") for c in r.stdout) > 20
    assert_clear_error(CliRunner().invoke(app, ["generate", str(bilingual_model.path), "--context", "fr"]),
                       "unknown context label 'fr'", "en, zh")


def test_unlabelled_model_rejects_context(small_shakespeare_model):
    with pytest.raises(XuxieError, match="trained without context labels"):
        small_shakespeare_model.generate(context="en")


def test_tsv_and_jsonl(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("form\ttext\nhaiku\tan old silent pond\n\tno label here\nsonnet\tshall I compare thee\n", encoding="utf-8")
    c = read_labelled(tsv, "form")
    assert c.documents == ["an old silent pond", "no label here", "shall I compare thee"]
    assert c.labels == ["haiku", None, "sonnet"] and c.mode == "lines"
    jl = tmp_path / "b.jsonl"
    jl.write_text("\n".join(json.dumps({"body": t, "who": w}) for t, w in [("hello there", "a"), ("你好", "b")]), encoding="utf-8")
    c = read_labelled(jl, "who", text_column="body")
    assert c.documents == ["hello there", "你好"] and c.labels == ["a", "b"]


@pytest.mark.parametrize("content, args, phrase", [
    ("lang,text\nen,hello world\n", ["--label-column", "author"], "has no column 'author'; its columns are: lang, text"),
    ("", ["--label-column", "lang"], "holds no rows"),
    ("lang,text\n", ["--label-column", "lang"], "holds no rows"),
    ("lang,body\nen,hi\n", ["--label-column", "lang"], "has no column 'text'"),
])
def test_bad_label_files(tmp_path, content, args, phrase):
    path = tmp_path / "c.csv"
    path.write_text(content, encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["train", str(path), "--out", str(out), "--steps", "2", "-q", *args])
    assert_clear_error(r, phrase)
    assert not out.exists()
