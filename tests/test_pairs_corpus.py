"""Source→target pairs: .tsv/.jsonl pairs files, continuation pairs from a plain novel, split."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import corpus_path

from xuxie.corpus import (
    Corpus,
    continuation_pairs,
    corpus_from_text,
    read_corpus,
    read_pairs,
    split_sentences,
)
from xuxie.errors import XuxieError


def _raises(match: str, fn, *args, **kwargs) -> str:
    """Call fn, expect a one-line XuxieError matching ``match``; return its message."""
    with pytest.raises(XuxieError, match=match) as info:
        fn(*args, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- reading pairs files
def test_tsv_with_header_crlf_blank_lines_and_trailing_tab(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_bytes(
        "source\ttarget\r\n  你好  \t Hello \r\n\r\n   \r\n天气如何？\tHow is the weather?\t\r\n"
        "a\tb\r\n".encode()
    )
    c = read_pairs(path)
    assert c.mode == "pairs" and c.pairs_from == "files"
    assert c.documents == ["你好", "天气如何？", "a"]
    assert c.targets == ["Hello", "How is the weather?", "b"]
    assert c.sources == (str(path),) and c.encodings == ("utf-8",)
    assert c.text == "你好\nHello\n天气如何？\nHow is the weather?\na\nb"
    assert c.n_chars == sum(map(len, c.documents + c.targets))
    # the same through read_corpus, and a header is only a header on the first line
    assert read_corpus(path, mode="pairs").targets == c.targets
    path.write_text("x\ty\nsource\ttarget\n", encoding="utf-8")
    assert read_pairs(path).documents == ["x", "source"]


def test_gbk_tsv_is_detected(tmp_path):
    rows = [("满纸荒唐言", "一把辛酸泪"), ("都云作者痴", "谁解其中味"), ("假作真时真亦假", "无为有处有还无")]
    path = tmp_path / "gbk.tsv"
    path.write_bytes("\n".join(f"{s}\t{t}" for s, t in rows).encode("gbk"))
    c = read_pairs(path)
    assert list(zip(c.documents, c.targets)) == rows
    assert c.encodings[0] in ("gb18030", "gbk")


def test_jsonl_keeps_inner_newlines_and_strips(tmp_path):
    path = tmp_path / "pairs.jsonl"
    lines = [
        json.dumps({"source": "  第一段\n第二段 ", "target": "续写\n两行\n", "id": 1}, ensure_ascii=False),
        "",
        json.dumps({"target": "B", "source": "A"}),
    ]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    c = read_corpus(path, mode="pairs")
    assert c.documents == ["第一段\n第二段", "A"]
    assert c.targets == ["续写\n两行", "B"]


def test_several_files_and_folder(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.tsv").write_text("1\tone\n2\ttwo\n", encoding="utf-8")
    (tmp_path / "d" / "b.jsonl").write_text('{"source": "3", "target": "three"}\n', encoding="utf-8")
    c = read_pairs(tmp_path / "d")
    assert c.documents == ["1", "2", "3"] and c.targets == ["one", "two", "three"]
    assert len(c.sources) == 2


@pytest.mark.parametrize(
    "content, match",
    [
        ("a\tb\nc\td\nno tab here\n", r"line 3 has no tab; write source<TAB>target"),
        ("a\tb\nc\td\te\n", r"line 2 has 2 tabs"),
        ("a\tb\n\n  \tonly target\n", r"line 3 has an empty source"),
        ("source\ttarget\na\t  \n", r"line 2 has an empty target"),
    ],
)
def test_bad_tsv_lines(tmp_path, content, match):
    path = tmp_path / "bad.tsv"
    path.write_text(content, encoding="utf-8")
    msg = _raises(match, read_pairs, path)
    assert str(path) in msg


@pytest.mark.parametrize(
    "content, match",
    [
        ('{"source": "a", "target": "b"}\n{"source": "a", "target": \n', r"line 2 is not JSON"),
        ('\n["a", "b"]\n', r"line 2 is a JSON list, not an object"),
        ('{"source": "a", "target": "b"}\n\n{"source": "a"}\n', r'line 3 has no "target" key'),
        ('{"source": 3, "target": "b"}\n', r'line 1: "source" is a JSON int, not a string'),
        ('{"source": "a", "target": " \\n "}\n', r'line 1 has an empty "target"'),
    ],
)
def test_bad_jsonl_lines(tmp_path, content, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    msg = _raises(match, read_pairs, path)
    assert str(path) in msg


def test_wrong_kind_of_file(tmp_path):
    novel = tmp_path / "novel.txt"
    novel.write_text("第一回\n\n话说天下大势。\n", encoding="utf-8")
    msg = _raises(r"pairs files must be \.tsv .* or \.jsonl \(got '\.txt'\)", read_corpus, novel, mode="pairs")
    assert "--mode continuation" in msg
    named_tsv = tmp_path / "novel.tsv"  # a plain text named .tsv: no tab anywhere
    named_tsv.write_text("第一回\n\n话说天下大势。\n", encoding="utf-8")
    msg = _raises(r"no tab on any line.*not a source<TAB>target pairs file", read_pairs, named_tsv)
    assert "--mode continuation" in msg
    for name, content in (("empty.tsv", ""), ("header.tsv", "source\ttarget\n\n"), ("blank.jsonl", "\n \n")):
        (tmp_path / name).write_text(content, encoding="utf-8")
        _raises(r"holds no pairs", read_pairs, tmp_path / name)


def test_pairs_from_a_string():
    c = corpus_from_text("source\ttarget\r\n问\t答\n", mode="pairs")
    assert c.documents == ["问"] and c.targets == ["答"] and c.mode == "pairs"
    _raises(r"the text line 2 has no tab", corpus_from_text, "问\t答\n只有一句\n", mode="pairs")
    _raises(r"the text holds no pairs", corpus_from_text, "source\ttarget\n \n", mode="pairs")


# --------------------------------------------------------------------------- Corpus behaviour
def test_split_keeps_pairs_aligned():
    c = Corpus([f"s{i}" for i in range(10)], "pairs", targets=[f"t{i}" for i in range(10)], pairs_from="files")
    train, val = c.split(0.2)
    assert train.documents == [f"s{i}" for i in range(8)] and train.targets == [f"t{i}" for i in range(8)]
    assert val.documents == ["s8", "s9"] and val.targets == ["t8", "t9"]
    assert train.mode == val.mode == "pairs" and val.pairs_from == "files"
    assert all(s[1:] == t[1:] for part in (train, val) for s, t in zip(part.documents, part.targets))
    whole, empty = c.split(0.0)
    assert whole == c and empty.documents == [] and empty.targets == [] and empty.mode == "pairs"
    _raises(r"only 1 pair\(s\): too few to hold out", Corpus(["a"], "pairs", targets=["b"]).split, 0.1)


def test_fingerprint_includes_targets_and_old_modes_unchanged():
    a = Corpus(["s"], "pairs", targets=["t1"])
    b = Corpus(["s"], "pairs", targets=["t2"])
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == Corpus(["s"], "pairs", targets=["t1"]).fingerprint()
    # text/lines corpora hash exactly as before targets existed
    old = hashlib.sha256(b"lines")
    for d in ("x", "y"):
        old.update(b"\x00")
        old.update(d.encode())
    assert Corpus(["x", "y"], "lines").fingerprint() == old.hexdigest()
    assert Corpus(["x", "y"], "lines").text == "x\ny" and Corpus(["x", "y"], "text").text == "x\n\ny"


# --------------------------------------------------------------------------- continuation pairs
SMALL_NOVEL = (
    "\u3000\u3000第一回\u3000开篇\r\n\r\n"
    "\u3000\u3000他说：“你来了！”她点头。天晴了？\r\n"
    " \t \r\n"
    "……\r\n\r\n"
    "\t风起．云涌……「走吧。」\r\n"
)


def test_continuation_paragraphs_exact():
    c = continuation_pairs(SMALL_NOVEL)
    assert c.mode == "pairs" and c.pairs_from == "continuation:paragraph"
    assert list(zip(c.documents, c.targets)) == [
        ("第一回\u3000开篇", "他说：“你来了！”她点头。天晴了？"),
        ("他说：“你来了！”她点头。天晴了？", "风起．云涌……「走吧。」"),  # the "……" line is skipped
    ]
    assert corpus_from_text(SMALL_NOVEL, mode="continuation").targets == c.targets


def test_continuation_sentences_exact():
    assert split_sentences(SMALL_NOVEL) == [
        "第一回\u3000开篇", "他说：“你来了！”", "她点头。", "天晴了？", "风起．", "云涌……", "「走吧。」",
    ]
    c = continuation_pairs(SMALL_NOVEL, unit="sentences", sentences=2)
    assert c.pairs_from == "continuation:sentences=2"
    assert list(zip(c.documents, c.targets)) == [
        ("第一回\u3000开篇\n他说：“你来了！”", "她点头。天晴了？"),
        ("她点头。天晴了？", "风起．云涌……"),
        ("风起．云涌……", "「走吧。」"),
    ]
    one = continuation_pairs(SMALL_NOVEL, unit="sentences", sentences=1)
    assert one.documents == split_sentences(SMALL_NOVEL)[:-1] and one.targets == split_sentences(SMALL_NOVEL)[1:]


def test_sentence_rules_for_english_dots_and_quotes():
    text = 'He said "go." Then 3.14 is pi! It\'s fine.\'\nWrapped\nline? (Yes.) End'
    assert split_sentences(text) == ['He said "go."', "Then 3.14 is pi!", "It's fine.'", "Wrapped\nline?", "(Yes.)", "End"]
    c = continuation_pairs(text, unit="sentences", sentences=2)
    assert c.documents == ['He said "go." Then 3.14 is pi!', "It's fine.'\nWrapped\nline?"]
    assert c.targets == ["It's fine.'\nWrapped\nline?", "(Yes.) End"]


def test_continuation_errors_and_files(tmp_path):
    _raises(r"unknown unit 'chapter'; choose one of: paragraph, sentences", continuation_pairs, SMALL_NOVEL, unit="chapter")
    _raises(r"at least 1, got 0", continuation_pairs, SMALL_NOVEL, unit="sentences", sentences=0)
    _raises(r"too short to make pairs: it has 1 paragraph", continuation_pairs, "\u3000\u3000只有一段。\n\n……\n")
    _raises(r"too short to make pairs: it has 1 unit of 9 sentence", continuation_pairs, SMALL_NOVEL,
            unit="sentences", sentences=9)
    _raises(r"already source→target pairs", continuation_pairs, Corpus(["a"], "pairs", targets=["b"]))
    # several files: pairs never cross from one file to the next
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "a.txt").write_text("甲一\n\n甲二\n", encoding="utf-8")
    (tmp_path / "books" / "b.txt").write_text("乙一\n乙二\n乙三\n", encoding="utf-8")
    c = read_corpus(tmp_path / "books", mode="continuation")
    assert list(zip(c.documents, c.targets)) == [("甲一", "甲二"), ("乙一", "乙二"), ("乙二", "乙三")]
    assert len(c.sources) == 2 and c.pairs_from == "continuation:paragraph"
    # no end marks and no blank line: the whole file is one (hard-wrapped) sentence
    _raises(r"b\.txt is too short to make pairs: it has 1 unit of 1 sentence", read_corpus,
            tmp_path / "books" / "b.txt", mode="continuation", unit="sentences", sentences=1)
    (tmp_path / "one.txt").write_text("只有一句。", encoding="utf-8")
    _raises(r"one\.txt is too short to make pairs", read_corpus, tmp_path / "one.txt", mode="continuation")
    (tmp_path / "blank.txt").write_text(" \n\t\n", encoding="utf-8")
    _raises(r"empty or only whitespace", read_corpus, tmp_path / "blank.txt", mode="continuation")
    # a Corpus read in text mode works the same as reading in continuation mode
    assert continuation_pairs(read_corpus(tmp_path / "books")).targets == c.targets


def test_continuation_on_hongloumeng():
    path = corpus_path("hongloumeng.txt")
    raw = path.read_bytes().decode("utf-8").replace("\r\n", "\n")
    paragraphs = [line.strip() for line in raw.split("\n") if line.strip()]
    assert len(paragraphs) > 2000
    c = read_corpus("hongloumeng", mode="continuation")
    assert len(c.documents) == len(c.targets) == len(paragraphs) - 1
    assert c.documents == paragraphs[:-1] and c.targets == paragraphs[1:]
    assert all(s and s == s.strip() for s in c.documents + c.targets)
    assert all(c.targets[i] == c.documents[i + 1] for i in range(len(c.documents) - 1))
    assert not any(ch in s for s in c.documents + c.targets for ch in "\n\r")  # one paragraph each; inner full-width spaces stay
    train, val = c.split(0.1)
    assert len(val.documents) == round(len(c.documents) * 0.1) and train.targets[-1] == val.documents[0]

    s = read_corpus("hongloumeng", mode="continuation", unit="sentences", sentences=3)
    assert len(s.documents) > 5000
    assert all(x.strip() and x == x.strip() for x in s.documents + s.targets)
    assert all(s.targets[i] == s.documents[i + 1] for i in range(len(s.documents) - 1))
