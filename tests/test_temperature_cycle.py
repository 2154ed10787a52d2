"""Temperature cycling (textgenrnn style) and ``xuxie generate --to-file``."""

from __future__ import annotations

import pytest
from conftest import assert_clear_error, run

from xuxie import TextGenerator
from xuxie.api import temperature_list
from xuxie.errors import XuxieError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, shakespeare_text):
    out = tmp_path_factory.mktemp("cycle") / "model"
    TextGenerator.train(shakespeare_text[:30_000], out=out, steps=20, seq_len=32, batch_size=16, eval_interval=20,
                        preview_length=0, progress=False, model_options={"hidden_size": 32})
    return out


@pytest.fixture(scope="module")
def tg(model_dir):
    return TextGenerator.load(model_dir)


def test_cycled_temperatures_equal_single_temperature_runs(tg):
    """The guarantee: with seed s, the samples at the k-th distinct temperature t are, in order,
    exactly generate(count, temperature=t, seed=s + k)."""
    temps = [1.0, 0.5, 0.2]
    got = tg.generate(6, "ROMEO:", temperature=temps, seed=11, max_new_tokens=40)
    assert len(got) == 6 and all(t.startswith("ROMEO:") for t in got)
    for k, t in enumerate(temps):
        alone = tg.generate(2, "ROMEO:", temperature=t, seed=11 + k, max_new_tokens=40)
        assert [got[i] for i in range(6) if i % 3 == k] == alone
    assert tg.generate(6, "ROMEO:", temperature=temps, seed=11, max_new_tokens=40) == got  # reproducible
    # one temperature in a list is the same as the plain float
    assert tg.generate(3, "ROMEO:", temperature=[0.7], seed=5, max_new_tokens=30) == \
        tg.generate(3, "ROMEO:", temperature=0.7, seed=5, max_new_tokens=30)


def test_repeated_temperatures_share_a_group(tg):
    got = tg.generate(5, "ROMEO:", temperature=[0.8, 0.3, 0.8], seed=2, max_new_tokens=30)
    alone = tg.generate(3, "ROMEO:", temperature=0.8, seed=2, max_new_tokens=30)
    assert [got[0], got[2], got[3]] == alone
    assert got[1] + got[4]  # the 0.3 group
    assert [got[1], got[4]] == tg.generate(2, "ROMEO:", temperature=0.3, seed=3, max_new_tokens=30)


def test_greedy_entries_are_deterministic(tg):
    greedy = tg.generate(prompt="ROMEO:", temperature=0, max_new_tokens=40)[0]
    for seed in (None, 1, 2):
        got = tg.generate(4, "ROMEO:", temperature=[0, 1.0], seed=seed, max_new_tokens=40)
        assert got[0] == got[2] == greedy


def test_stream_takes_one_temperature(tg):
    assert "".join(tg.stream("ROMEO:", temperature=[0], max_new_tokens=20)) == \
        tg.generate(prompt="ROMEO:", temperature=0, max_new_tokens=20, include_prompt=False)[0]
    with pytest.raises(XuxieError, match="one temperature"):
        tg.stream("ROMEO:", temperature=[1.0, 0.5])
    with pytest.raises(XuxieError, match="0 \\(greedy\\) or positive"):
        tg.generate(2, "ROMEO:", temperature=[1.0, -0.5])


def test_a_prompt_in_place_of_n_is_a_clear_error(tg):
    """``generate("ROMEO:")`` (textgenrnn's habit) said "'<' not supported between 'str' and 'int'"."""
    with pytest.raises(XuxieError, match="n .*must be a positive whole number, got 'ROMEO:'"):
        tg.generate("ROMEO:")
    for n in (0, 2.5, True):
        with pytest.raises(XuxieError, match="must be a positive whole number"):
            tg.generate(n, "ROMEO:")


@pytest.mark.parametrize("value, expected", [("1.0,0.5,0.2", [1.0, 0.5, 0.2]), (" 0.7 ", [0.7]), ("0, 1", [0.0, 1.0]), (0.3, [0.3])])
def test_temperature_list_parses(value, expected):
    assert temperature_list(value) == expected


@pytest.mark.parametrize("value", ["1.0,abc", "1.0,,0.5", "-1", "0.5,-0.2", "nan"])
def test_cli_bad_temperature_is_a_clear_error(model_dir, value):
    assert_clear_error(run("generate", model_dir, "-n", "3", "--temperature", value), "temperature must be 0 (greedy) or positive")


def test_cli_cycles_temperatures(model_dir, tg):
    r = run("generate", model_dir, "-p", "ROMEO:", "-n", "4", "--temperature", "1.0,0", "--seed", "4", "--max-new-tokens", "25")
    assert r.exit_code == 0, r.output
    expected = tg.generate(4, "ROMEO:", temperature=[1.0, 0.0], seed=4, max_new_tokens=25)
    assert r.stdout == "".join(f"--- sample {i} ---\n{t}\n" for i, t in enumerate(expected, 1))


def test_cli_to_file(model_dir, tg, tmp_path):
    target = tmp_path / "out" / "samples.txt"
    r = run("generate", model_dir, "-p", "ROMEO:", "-n", "3", "-t", "1.0,0.5,0.2", "--top-k", "5",
            "--seed", "9", "--max-new-tokens", "30", "--to-file", target)
    assert r.exit_code == 0, r.output
    expected = tg.generate(3, "ROMEO:", temperature=[1.0, 0.5, 0.2], top_k=5, seed=9, max_new_tokens=30)
    assert expected[0] in r.stdout  # still printed to the terminal
    assert f"wrote 3 sample(s) to {target}" in " ".join(r.stderr.split())
    content = target.read_text(encoding="utf-8")
    header, _, body = content.partition("\n\n")
    for line in (f"# model: {model_dir}", "# prompt: 'ROMEO:'", "# temperature: 1, 0.5, 0.2", "# top_k: 5", "# top_p: 1.0", "# seed: 9"):
        assert line in header.splitlines(), (line, header)
    assert "# date: " in header
    for i, (t, text) in enumerate(zip(("1", "0.5", "0.2"), expected), 1):
        assert f"--- sample {i} (temperature {t}) ---\n{text}\n" in body
    assert not [p for p in target.parent.iterdir() if p.name != "samples.txt"]  # no temporary files left


def test_cli_to_file_single_streamed(model_dir, tg, tmp_path):
    target = tmp_path / "one.txt"
    r = run("generate", model_dir, "-p", "ROMEO:", "-t", "0", "--max-new-tokens", "20", "--to-file", target)
    assert r.exit_code == 0, r.output
    greedy = tg.generate(prompt="ROMEO:", temperature=0, max_new_tokens=20)[0]
    assert r.stdout == greedy + "\n"
    assert f"--- sample 1 (temperature 0) ---\n{greedy}\n" in target.read_text(encoding="utf-8")
