"""``xuxie write``: the real program driven in a pseudo-terminal with pexpect."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

from conftest import corpus_path  # noqa: E402

from xuxie import TextGenerator  # noqa: E402
from xuxie.write import show_token  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREEN = re.compile(r"┌─ text \((\d+) tokens\) ─\n(.*)\n└─\nnext token \(temperature for w: [^)]*\):\n(.*?)\nN pick", re.S)
OPTION = re.compile(r"^\s*(\d+)  (\S+)\s+([\d.]+)%$")
END = r"\? help\r\n> "


def unshow(shown: str) -> str:
    return shown.replace("⏎", "\n").replace("␣", " ").replace("⇥", "\t")


def train_small(text: str, out: Path) -> Path:
    TextGenerator.train(text, out=out, steps=30, seq_len=32, batch_size=16, eval_interval=30, preview_length=0,
                        progress=False, model_options={"hidden_size": 32})
    return out


def spawn(model: Path, *args: str):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "COLUMNS": "200"}
    child = pexpect.spawn(sys.executable, ["-m", "xuxie.cli", "write", str(model), *args], cwd=str(ROOT), env=env,
                          encoding="utf-8", timeout=90, dimensions=(60, 200))
    return child


def read_screen(child) -> tuple[int, str, list[tuple[str, float]]]:
    """Wait for the next full screen; return (tokens, text, options)."""
    child.expect(END)
    shown = child.before.replace("\r\n", "\n")
    matches = list(SCREEN.finditer(shown))
    assert matches, shown
    m = matches[-1]
    options = []
    for line in m.group(3).splitlines():
        o = OPTION.match(line)
        assert o, line
        options.append((unshow(o.group(2)), float(o.group(3))))
    return int(m.group(1)), m.group(2), options


@pytest.fixture(scope="module")
def shakespeare_model(tmp_path_factory) -> Path:
    text = corpus_path("tinyshakespeare.txt").read_text(encoding="utf-8")[:30_000]
    return train_small(text, tmp_path_factory.mktemp("write") / "model")


def test_write_session_in_a_terminal(shakespeare_model, tmp_path):
    child = spawn(shakespeare_model, "--prompt", "ROMEO:", "--seed", "1")
    try:
        tokens, text, options = read_screen(child)
        assert text == "ROMEO:" and tokens == 6
        assert len(options) == 10  # the default --top
        probs = [p for _, p in options]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 100.5

        child.sendline("1")  # pick the most likely token: it is appended to the text
        tokens, text, _ = read_screen(child)
        assert tokens == 7 and text == "ROMEO:" + options[0][0]

        child.sendline("t  thee")  # t TEXT types text (here starting with a space)
        tokens2, text2, _ = read_screen(child)
        assert text2 == text + " thee" and tokens2 == tokens + 5
        child.sendline("and")  # a line that is not a command is typed too
        tokens3, text3, _ = read_screen(child)
        assert text3 == text2 + "and" and tokens3 == tokens2 + 3

        child.sendline("w 20")
        tokens4, text4, _ = read_screen(child)
        assert tokens4 == tokens3 + 20 and text4.startswith(text3) and len(text4) == len(text3) + 20

        child.sendline("u")
        tokens5, text5, _ = read_screen(child)
        assert (tokens5, text5) == (tokens3, text3)

        child.sendline("t 龍")  # never seen in training: typed all the same (as <unk> for the model), with a warning
        child.expect(r"warning: the typed text has 1 character\(s\) the model never saw in training, read as unknown: '龍'\r\n")
        tokens6, text6, _ = read_screen(child)
        assert (tokens6, text6) == (tokens3 + 1, text3 + "龍")
        child.sendline("u")
        assert read_screen(child)[:2] == (tokens3, text3)

        target = tmp_path / "story.txt"
        child.sendline(f"s {target}")
        child.expect(r"saved \d+ characters to .*\r\n> ")
        assert target.read_text(encoding="utf-8") == text3

        child.sendline("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


def test_ctrl_c_stops_writing_and_keeps_the_session(shakespeare_model, tmp_path):
    child = spawn(shakespeare_model, "--prompt", "ROMEO:", "--seed", "1")
    try:
        tokens, text, _ = read_screen(child)
        child.sendline("w 100000")  # far longer than the test waits
        child.expect(r"w 100000\r\n")
        time.sleep(1.5)
        child.sendintr()
        child.expect(r"stopped after (\d+) of 100000 tokens \(Ctrl-C\); the text is kept\r\n", timeout=30)
        written = int(child.match.group(1))
        tokens2, text2, _ = read_screen(child)
        assert 0 < written < 100000 and tokens2 == tokens + written and text2.startswith(text) and len(text2) == len(text) + written

        child.sendline("t !")  # the session goes on with the text written so far
        tokens3, text3, _ = read_screen(child)
        assert (tokens3, text3) == (tokens2 + 1, text2 + "!")
        target = tmp_path / "story.txt"
        child.sendline(f"s {target}")
        child.expect(r"saved \d+ characters to .*\r\n> ")
        assert target.read_text(encoding="utf-8") == text3
        child.sendline("u")  # undo takes back the typing, then the whole interrupted writing
        assert read_screen(child)[1] == text2
        child.sendline("u")
        assert read_screen(child)[1] == text
        child.sendline("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0, (child.exitstatus, child.signalstatus)


def test_write_shows_chinese(tmp_path):
    text = corpus_path("hongloumeng.txt").read_bytes().decode("utf-8").replace("\r\n", "\n")[:20_000]
    model = train_small(text, tmp_path / "hlm")
    child = spawn(model, "--prompt", "宝玉", "--top", "5")
    try:
        tokens, shown, options = read_screen(child)
        assert shown == "宝玉" and len(options) == 5
        assert any("\u4e00" <= ch <= "\u9fff" for tok, _ in options for ch in tok), options
        child.sendline("w 5")
        tokens2, shown2, _ = read_screen(child)
        assert shown2.startswith("宝玉") and tokens2 == tokens + 5
        child.sendline("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_show_token():
    assert show_token("\n") == "⏎" and show_token(" ") == "␣" and show_token("a b") == "a␣b" and show_token("宝") == "宝"
