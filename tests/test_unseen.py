"""Characters a model never saw are read as ``<unk>`` with one warning naming them, wherever the
user's text comes in; the user's text is echoed unchanged. And output piped into ``head`` ends quietly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from xuxie import TextGenerator
from xuxie.errors import XuxieWarning

ROOT = Path(__file__).resolve().parents[1]
TEXT = "the cat sat on the mat. a dog ran to the cat.\n" * 40  # no 'z', no '龘'
UNSEEN = "the zoo 龘 sat"  # 'z' and '龘' were never seen
SMALL = dict(steps=30, seq_len=32, batch_size=16, eval_interval=30, preview_length=0, progress=False)


@pytest.fixture(scope="module")
def char_model(tmp_path_factory) -> TextGenerator:
    return TextGenerator.train(TEXT, out=tmp_path_factory.mktemp("unseen") / "char", model_options={"hidden_size": 32}, **SMALL)


@pytest.fixture(scope="module")
def word_model(tmp_path_factory) -> TextGenerator:
    return TextGenerator.train(TEXT, tokenizer="word", out=tmp_path_factory.mktemp("unseen") / "word",
                               model_options={"hidden_size": 32}, **SMALL)


@pytest.fixture(scope="module")
def seq2seq_model(tmp_path_factory) -> TextGenerator:
    paragraphs = "\n\n".join(f"the cat sat on mat {i % 5}. a dog ran to the cat." for i in range(60))
    return TextGenerator.train(paragraphs, arch="seq2seq", mode="continuation", out=tmp_path_factory.mktemp("unseen") / "s2s",
                               model_options={"hidden_size": 32, "embed_dim": 16, "max_source_len": 48, "max_target_len": 16},
                               **SMALL)


def unseen_warnings(call):
    """(what ``call()`` returns, the messages of the xuxie warnings it gave)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, XuxieWarning)]


def test_char_model_generates_after_unseen_characters(char_model):
    texts, said = unseen_warnings(lambda: char_model.generate(3, prompt=UNSEEN, max_new_tokens=10, temperature=[1.0, 0.5], seed=1))
    assert len(said) == 1, said  # once, however many temperatures
    assert said[0] == "the prompt has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"
    assert all(t.startswith(UNSEEN) and len(t) > len(UNSEEN) for t in texts)
    assert not any("\ufffd" in t or "<unk>" in t for t in texts)


def test_stream_and_continue_text_warn_once(char_model):
    pieces, said = unseen_warnings(lambda: list(char_model.stream(prompt=UNSEEN, max_new_tokens=10, seed=1)))
    assert len(said) == 1 and pieces
    written, said = unseen_warnings(lambda: char_model.continue_text(UNSEEN, max_new_tokens=10, seed=1))
    assert len(said) == 1 and "\ufffd" not in written


def test_word_model_names_the_words(word_model):
    texts, said = unseen_warnings(lambda: word_model.generate(prompt=UNSEEN, max_new_tokens=10, seed=1))
    assert len(said) == 1, said
    assert said[0].endswith("read as unknown: 'z' (in 'zoo') '龘'")
    assert texts[0].startswith(UNSEEN)


def test_seq2seq_answers_an_input_with_unseen_characters(seq2seq_model):
    answer, said = unseen_warnings(lambda: seq2seq_model.continue_text(UNSEEN, max_new_tokens=10, seed=1))
    assert said == ["the input has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"]
    assert isinstance(answer, str) and "\ufffd" not in answer
    texts, said = unseen_warnings(lambda: seq2seq_model.generate(2, prompt=UNSEEN, max_new_tokens=10, seed=1))
    assert len(said) == 1 and len(texts) == 2


def test_evaluation_text_warns_the_same_way(char_model):
    result, said = unseen_warnings(lambda: char_model.evaluate("the cat sat on the zoo mat 龘."))
    assert said == ["the evaluation text has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"]
    assert result["unknown_chars"] == 2


def test_line_breaks_joining_documents_are_not_unseen(tmp_path):
    """A lines model never reads the line breaks between its documents: none is reported."""
    tg = TextGenerator.train(TEXT, mode="lines", out=tmp_path / "lines", model_options={"hidden_size": 32}, **SMALL)
    assert "\n" not in tg.tokenizer.index
    result, said = unseen_warnings(lambda: tg.evaluate("the cat sat.\na dog ran.\nthe zoo.\n"))
    assert result["unknown_chars"] == 1 and said == [
        "the evaluation text has 1 character(s) the model never saw in training, read as unknown: 'z'"]


def test_long_lists_are_cut(char_model):
    many = "".join(chr(0x4E00 + i) for i in range(15))
    _, said = unseen_warnings(lambda: char_model.generate(prompt=many, max_new_tokens=1))
    assert said[0].startswith("the prompt has 15 character(s)") and said[0].endswith(" …") and said[0].count("'") == 20


def test_writing_session_keeps_typed_text(char_model):
    from xuxie.write import WritingSession, run

    session = WritingSession(char_model, prompt="the cat", seed=1)
    shown: list[str] = []
    commands = iter(["t  zoo 龘", "t  zoo 龘", "q"])  # the second time warns again: each command is reported
    assert run(session, top=3, read=lambda _: next(commands), write=shown.append) == 0
    assert session.text == "the cat zoo 龘 zoo 龘"
    assert [s for s in shown if s.startswith("warning:")] == [
        "warning: the typed text has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"] * 2


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "xuxie.cli", *map(str, args)], capture_output=True, text=True,
                          encoding="utf-8", cwd=ROOT, env=env, timeout=120, **kw)


@pytest.mark.parametrize("args", [("--stream",), ("--no-stream",), ("-n", "2")])
def test_cli_generate_warns_on_one_line(char_model, args):
    r = cli("generate", char_model.path, "--prompt", UNSEEN, "--max-new-tokens", "10", *args)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == ["warning: the prompt has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"]
    samples = [s for s in re.split(r"--- sample \d+ ---\n", r.stdout) if s]
    assert len(samples) == (2 if "-n" in args else 1) and all(s.startswith(UNSEEN) for s in samples), r.stdout


def test_cli_continue_with_seq2seq(seq2seq_model, tmp_path):
    # The input is read twice (to answer it, then to plot attention): still one warning.
    r = cli("continue", seq2seq_model.path, "--text", UNSEEN, "--max-new-tokens", "10", "--paragraphs", "2",
            "--plot-attention", tmp_path / "attention.png")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warned == ["warning: the input has 2 character(s) the model never saw in training, read as unknown: 'z' '龘'"], r.stderr


# --------------------------------------------------------------------------- | head
@pytest.mark.parametrize("args", [("--max-new-tokens", "100000"), ("-n", "60", "--max-new-tokens", "2000")])
def test_reader_going_away_ends_quietly(char_model, args):
    """``xuxie generate … | head -1``: the pipe closes early; no traceback, a quiet exit."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    p = subprocess.Popen([sys.executable, "-m", "xuxie.cli", "generate", str(char_model.path), *args], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read().decode("utf-8")
    assert p.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
