"""Every size the user types is checked against a stated limit before anything is allocated for it:
a typo (``--max-new-tokens 10000000000``, ``--n 1000000``) gets one line and exit code 2, fast and
small, and the limit's environment variable raises it.

The commands run as real processes so that their own peak memory can be read (VmHWM): a
request that slipped past its check would allocate gigabytes (or be killed) before failing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from xuxie import TextGenerator, XuxieError
from xuxie.limits import LIMITS

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL_MB = 1024  # python + torch + a tiny model use ~300 MB; a history of 10^10 tokens would be 80 GB


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float
    peak_mb: float


# Runs ``python -m xuxie`` and, at exit, writes the process's own peak memory (VmHWM, which exec
# resets) to the file named by argv[1]. Not getrusage/wait4: their ru_maxrss includes the memory of
# the forking parent, so a test process grown large by earlier tests would read as a large child.
PEAK_REPORTING_MAIN = """
import atexit, runpy, sys
peak_file = sys.argv.pop(1)
def report():
    with open("/proc/self/status") as status, open(peak_file, "w") as out:
        out.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(report)
runpy.run_module("xuxie", run_name="__main__", alter_sys=True)
"""


def xuxie(*args: object, **env: str) -> Run:
    """``python -m xuxie ARGS`` in its own process, with ``env`` added and no ambient XUXIE_MAX_* setting."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("XUXIE_MAX_")} | env
    with tempfile.TemporaryDirectory() as tmp:
        peak_file = Path(tmp) / "peak_kb"
        start = time.perf_counter()
        # the timeout makes a hang fail the test instead of blocking the suite
        proc = subprocess.run([sys.executable, "-c", PEAK_REPORTING_MAIN, peak_file, *map(str, args)],
                              capture_output=True, text=True, env=environ, timeout=300)
        seconds = time.perf_counter() - start
        peak_mb = int(peak_file.read_text()) / 1024
    return Run(proc.returncode, proc.stdout, proc.stderr, seconds, peak_mb)


def assert_refused(run: Run, *phrases: str) -> None:
    """Exit 2, exactly one stderr line (an error naming ``phrases``), no traceback, quickly, nothing big allocated."""
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.code == 2, (run.code, run.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
    assert "Traceback" not in run.stderr + run.stdout
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    assert run.seconds < 20, run.seconds  # a guard against real work, not a speed test
    assert run.peak_mb < SMALL_MB, run.peak_mb


# --------------------------------------------------------------------------- typos refused
@pytest.mark.parametrize("args, phrases", [
    (["--max-new-tokens", "10000000000"], ["(prompt + 10000000000) tokens", "lower --max-new-tokens", "XUXIE_MAX_GENERATE_TOKENS"]),
    (["--max-new-tokens", "10000000000", "--no-stream", "-n", "4"], ["XUXIE_MAX_GENERATE_TOKENS"]),
    (["-n", "4", "--max-new-tokens", "20000000", "--prompt", "ROMEO"],
     ["4 × 1 × (5 + 20000000) tokens, over the limit of 50000000", "lower --n/--max-new-tokens", "XUXIE_MAX_GENERATE_TOKENS"]),
    (["-n", "3000", "--max-new-tokens", "20000"], ["3000 × 1 × (1 + 20000) tokens", "XUXIE_MAX_GENERATE_TOKENS"]),
    (["-n", "1000000"], ["decode 1000000 × 1 sequences", "over the limit of 4096", "lower --n", "XUXIE_MAX_GENERATE_ROWS"]),
    (["--num-beams", "100000"], ["× 100000 sequences", "lower --num-beams", "XUXIE_MAX_GENERATE_ROWS"]),
])
def test_generate_refuses_huge_sizes(tiny_model_dir, args, phrases):
    assert_refused(xuxie("generate", tiny_model_dir, *args), *phrases)


@pytest.mark.parametrize("args, phrases", [
    (["--paragraphs", "1000000"], ["write 1000000 paragraphs", "over the limit of 10000", "XUXIE_MAX_PARAGRAPHS"]),
    (["--max-new-tokens", "10000000000"], ["10000000000) tokens", "XUXIE_MAX_GENERATE_TOKENS"]),
    (["--paragraphs", "5000", "--max-new-tokens", "20000"], ["lower --paragraphs/--max-new-tokens", "XUXIE_MAX_GENERATE_TOKENS"]),
])
def test_continue_refuses_huge_sizes(tiny_model_dir, args, phrases):
    assert_refused(xuxie("continue", tiny_model_dir, "--text", "ROMEO", *args), *phrases)


@pytest.mark.parametrize("args, phrases", [
    (["--samples", "1000000"], ["analyze 1000000 × 200 tokens", "over the limit of 1000000", "XUXIE_MAX_ANALYZE_TOKENS"]),
    (["--length", "10000000000"], ["20 × 10000000000", "lower --samples/--length", "XUXIE_MAX_ANALYZE_TOKENS"]),
    (["--samples", "5000", "--length", "10"], ["decode 5000 × 1 sequences", "lower --samples", "XUXIE_MAX_GENERATE_ROWS"]),
])
def test_analyze_refuses_huge_sizes(tiny_model_dir, tmp_path, args, phrases):
    out = tmp_path / "report"
    assert_refused(xuxie("analyze", tiny_model_dir, "--out", out, *args), *phrases)
    assert not out.exists()  # refused before any work


# --------------------------------------------------------------------------- the environment variables
@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e9", "12.5"])
def test_bad_environment_value_is_one_line(tiny_model_dir, value):
    run = xuxie("generate", tiny_model_dir, "--max-new-tokens", "5", XUXIE_MAX_GENERATE_TOKENS=value)
    assert_refused(run, "XUXIE_MAX_GENERATE_TOKENS must be a positive whole number", repr(value))


def test_bad_paragraphs_environment_value(tiny_model_dir):
    run = xuxie("continue", tiny_model_dir, "--text", "ROMEO", XUXIE_MAX_PARAGRAPHS="lots")
    assert_refused(run, "XUXIE_MAX_PARAGRAPHS must be a positive whole number")


def test_limit_is_read_from_the_environment(tiny_model_dir):
    args = ("generate", tiny_model_dir, "-n", "3", "--max-new-tokens", "20")  # 3 × 1 × (1 + 20) = 63 tokens
    assert_refused(xuxie(*args, XUXIE_MAX_GENERATE_TOKENS="50"), "over the limit of 50")
    run = xuxie(*args, XUXIE_MAX_GENERATE_TOKENS="100")
    assert run.code == 0, run.stderr
    assert "--- sample 3 ---" in run.stdout


def test_raising_the_limit_lets_a_larger_request_through(tiny_model_dir):
    """5,000 samples are over the default 4,096 rows; raised, they are written (1 token each: cheap)."""
    args = ("generate", tiny_model_dir, "-n", "5000", "--max-new-tokens", "1", "--seed", "0")
    assert_refused(xuxie(*args), "XUXIE_MAX_GENERATE_ROWS")
    run = xuxie(*args, XUXIE_MAX_GENERATE_ROWS="5000")
    assert run.code == 0, run.stderr
    assert "--- sample 5000 ---" in run.stdout


def test_raising_the_paragraph_limit(tiny_model_dir):
    args = ("continue", tiny_model_dir, "--text", "ROMEO", "--paragraphs", "3", "--max-new-tokens", "5", "--seed", "0")
    assert_refused(xuxie(*args, XUXIE_MAX_PARAGRAPHS="2"), "write 3 paragraphs", "over the limit of 2")
    assert xuxie(*args, XUXIE_MAX_PARAGRAPHS="3").code == 0


# --------------------------------------------------------------------------- the Python API, and the README
def test_python_api_checks_the_same_limits(tiny_model_dir, monkeypatch):
    tg = TextGenerator.load(tiny_model_dir)
    start = time.perf_counter()
    with pytest.raises(XuxieError, match=re.escape("4 × 1 × (5 + 10000000000)")):
        tg.generate(4, "ROMEO", max_new_tokens=10**10)
    with pytest.raises(XuxieError, match="XUXIE_MAX_PARAGRAPHS"):
        tg.continue_text("ROMEO", paragraphs=10**6)
    with pytest.raises(XuxieError, match="XUXIE_MAX_GENERATE_ROWS"):
        tg.generate(10**6)
    assert time.perf_counter() - start < 5
    monkeypatch.setenv("XUXIE_MAX_GENERATE_TOKENS", "10")  # read at check time, not at import
    with pytest.raises(XuxieError, match="over the limit of 10;"):
        tg.generate(1, "ROMEO", max_new_tokens=6)
    assert len(tg.generate(1, "ROMEO", max_new_tokens=5)) == 1


def test_readme_states_every_limit():
    text = README.read_text(encoding="utf-8")
    for limit in LIMITS:
        row = next((line for line in text.splitlines() if limit.env in line and line.startswith("|")), None)
        assert row is not None, f"README has no table row for {limit.env}"
        assert f"{limit.default:,}" in row, (limit.default, row)
