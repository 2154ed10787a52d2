"""Threads: per-workload defaults, the user's choice (--threads, XUXIE_THREADS, set_threads) wins
everywhere, torch's setting is restored afterwards, bad values are one clear line, and OpenMP's
spin-wait is shortened before torch loads (what keeps two jobs on 2 cores from collapsing; the
speed itself is benchmarks/bench_contention.py's job)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

import xuxie
from xuxie import TextGenerator, threads
from xuxie.cli import app
from xuxie.decoding import GenerationConfig, beam_search, sample_steps

COMMANDS = ["train", "generate", "continue", "write", "evaluate", "info", "export", "analyze"]


@pytest.fixture(autouse=True)
def clean_choice(monkeypatch):
    monkeypatch.delenv("XUXIE_THREADS", raising=False)
    xuxie.set_threads(None)
    yield
    xuxie.set_threads(None)


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)


class ThreadSpy:
    """Wraps a model and records torch's thread count at every decoding step."""

    def __init__(self, model):
        self.inner = model
        self.seen: list[int] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def prefill(self, ids):
        self.seen.append(torch.get_num_threads())
        return self.inner.prefill(ids)

    def step(self, ids, state):
        self.seen.append(torch.get_num_threads())
        return self.inner.step(ids, state)


def test_workload_defaults(four_cores):
    assert threads.threads_for("train") == 4
    assert threads.threads_for("evaluate") == 4
    assert threads.threads_for("decode", rows=1) == 1
    assert threads.threads_for("decode", rows=threads.WIDE_DECODE_ROWS - 1) == 1
    assert threads.threads_for("decode", rows=threads.WIDE_DECODE_ROWS) == 4


def test_user_choice_wins_env_then_set_threads(four_cores, monkeypatch):
    monkeypatch.setenv("XUXIE_THREADS", "3")
    assert threads.threads_for("decode") == 3 and threads.threads_for("train") == 3
    xuxie.set_threads(2)
    assert threads.threads_for("decode") == 2 and threads.threads_for("train") == 2


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "two", "nan", " "])
def test_bad_thread_counts_are_clear_errors(monkeypatch, bad):
    with pytest.raises(xuxie.XuxieError, match="whole number of threads"):
        xuxie.set_threads(bad)
    if bad.strip():
        monkeypatch.setenv("XUXIE_THREADS", bad)
        with pytest.raises(xuxie.XuxieError, match="XUXIE_THREADS"):
            threads.threads_for("train")


def test_decoding_uses_one_thread_for_one_sequence_and_all_cores_for_many(small_shakespeare_model, four_cores):
    tg = small_shakespeare_model
    before = torch.get_num_threads()
    spy = ThreadSpy(tg.model)
    ids = tg.tokenizer.encode("ROMEO:")
    list(sample_steps(spy, ids, GenerationConfig(max_new_tokens=5, temperature=1.0, seed=0), n=1))
    assert set(spy.seen) == {1}
    spy.seen.clear()
    list(sample_steps(spy, ids, GenerationConfig(max_new_tokens=5, temperature=1.0, seed=0), n=8))
    assert set(spy.seen) == {4}
    spy.seen.clear()
    beam_search(spy, ids, GenerationConfig(max_new_tokens=5, temperature=0, num_beams=4))
    assert set(spy.seen) == {1}
    assert torch.get_num_threads() == before  # restored


def test_set_threads_reaches_decoding_and_results_do_not_change(small_shakespeare_model):
    tg = small_shakespeare_model
    one = tg.generate(prompt="ROMEO:", max_new_tokens=40, seed=3)
    xuxie.set_threads(2)
    spy = ThreadSpy(tg.model)
    list(sample_steps(spy, tg.tokenizer.encode("ROMEO:"), GenerationConfig(max_new_tokens=3, seed=0), n=1))
    assert set(spy.seen) == {2}
    assert tg.generate(prompt="ROMEO:", max_new_tokens=40, seed=3) == one


def test_training_runs_with_the_training_thread_count(shakespeare_text, four_cores, monkeypatch):
    seen = []
    step = xuxie.Trainer._train_step

    def spy(self, lr):
        seen.append(torch.get_num_threads())
        return step(self, lr)

    monkeypatch.setattr(xuxie.Trainer, "_train_step", spy)
    before = torch.get_num_threads()
    TextGenerator.train(shakespeare_text[:20_000], steps=3, preview_length=0, progress=False, model_options={"hidden_size": 16})
    assert seen == [4, 4, 4]
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_threads(command):
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--threads" in result.stdout


def test_cli_threads_zero_and_bad_env_exit_2(small_shakespeare_model):
    path = str(small_shakespeare_model.path)
    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "info", path, "--threads", "0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--threads" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "xuxie.cli", "info", path], capture_output=True, text=True, timeout=120,
                       env={**_env(), "XUXIE_THREADS": "lots"})
    assert r.returncode == 2 and r.stderr.startswith("error: XUXIE_THREADS must be a whole number") and "Traceback" not in r.stderr


def test_cli_threads_applies_to_the_command(small_shakespeare_model):
    """`generate --threads 2` decodes a single sample with 2 threads (the default would be 1)."""
    code = ("import sys, torch, xuxie.decoding as d\n"
            "orig = d._sample_loop\n"
            "def spy(*a, **k):\n"
            "    print('threads', torch.get_num_threads(), file=sys.stderr)\n"
            "    yield from orig(*a, **k)\n"
            "d._sample_loop = spy\n"
            "from xuxie.cli import main\n"
            "sys.argv = ['xuxie'] + sys.argv[1:]\n"
            "main()\n")
    base = [sys.executable, "-c", code, "generate", str(small_shakespeare_model.path), "--max-new-tokens", "5", "--seed", "1"]
    default = subprocess.run(base, capture_output=True, text=True, timeout=120, env=_env())
    chosen = subprocess.run([*base, "--threads", "2"], capture_output=True, text=True, timeout=120, env=_env())
    assert "threads 1" in default.stderr, default.stderr
    assert "threads 2" in chosen.stderr, chosen.stderr


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("XUXIE_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}


def test_openmp_spin_is_shortened_before_torch_loads_unless_the_user_chose():
    code = "import os, xuxie; print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert r.stdout.split() == [threads.SPIN_COUNT, "None"]
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env={**_env(), "OMP_WAIT_POLICY": "ACTIVE"})
    assert r.stdout.split() == ["None", "ACTIVE"]
    late = "import os, torch, xuxie; print(os.environ.get('GOMP_SPINCOUNT'))"  # torch first: too late, left alone
    r = subprocess.run([sys.executable, "-c", late], capture_output=True, text=True, timeout=120, env=_env())
    assert r.stdout.split() == ["None"]


def test_test_process_stays_idle_while_a_training_child_runs(tmp_path, small_shakespeare_model):
    """A test waiting for a training subprocess must leave both cores to it (torch has already
    run in this process: the fixture trained a model here, so its OpenMP threads exist)."""
    import resource
    import time

    corpus = tmp_path / "c.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog.\n" * 2000, encoding="utf-8")
    cmd = [sys.executable, "-m", "xuxie.cli", "train", str(corpus), "--out", str(tmp_path / "m"), "--steps", "40",
           "--hidden-size", "64", "--preview-length", "0", "--quiet"]
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - start
    assert r.returncode == 0, r.stderr
    busy = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert busy < 0.1 * wall + 0.2, f"the test process used {busy:.2f} s of CPU in {wall:.1f} s"
