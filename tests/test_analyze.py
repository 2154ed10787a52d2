"""xuxie analyze: the temperature sweep on a real Shakespeare model, the report in a real browser,
Chinese plots without missing glyphs, and one clear line for bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
import warnings
from pathlib import Path

import pytest
from conftest import assert_clear_error, corpus_path, run

from xuxie import TextGenerator

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def shakespeare_report(small_shakespeare_model, tmp_path_factory):
    """The conftest LSTM (150 steps on 200k characters of tinyshakespeare) analysed through the CLI.
    It was trained on a string, so the training text is given with --corpus."""
    model_dir = small_shakespeare_model.path
    out = tmp_path_factory.mktemp("analyze") / "report"
    result = run("analyze", model_dir, "--corpus", "tinyshakespeare", "--out", out, "--temperatures", "0.2,0.8,1.2",
                 "--samples", 10, "--length", 120, "--strategies", "greedy,beam,top-p")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return out, result


def test_report_files_and_metrics(shakespeare_report, small_shakespeare_model):
    out, result = shakespeare_report
    for name in ("report.md", "report.html", "metrics.json", "samples.json", "training_curves.png", "metric_distinct_2_char.png",
                 "metric_repetition_4.png", "metric_self_bleu.png", "metric_ngram8_in_corpus.png", "metric_longest_copy_max.png",
                 "metric_mean_logprob.png", f"next_token_{small_shakespeare_model.path.name}.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*.tmp")), "temporary files left behind"
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (model,) = report["models"]
    rows = {row["temperature"]: row for row in model["by_temperature"]}
    assert sorted(rows) == [0.2, 0.8, 1.2]
    for row in rows.values():
        for key in ("distinct_1_char", "distinct_2_char", "distinct_3_char", "distinct_2_token", "repetition_4",
                    "longest_repeat_max", "self_bleu", "ngram8_in_corpus", "longest_copy_max", "mean_logprob", "length_mean"):
            assert isinstance(row[key], (int, float)), key
        assert row["n_samples"] == 10
    # the judgement the seeds make by eye, measured: low temperature repeats itself, high temperature
    # writes more varied and more novel (less copied) text, which the model itself finds less likely
    lo, hi = rows[0.2], rows[1.2]
    assert hi["distinct_2_char"] > lo["distinct_2_char"] + 0.1
    assert hi["distinct_2_token"] > lo["distinct_2_token"]
    assert lo["repetition_4"] > hi["repetition_4"] + 0.2
    assert 1 - hi["ngram8_in_corpus"] > 1 - lo["ngram8_in_corpus"] + 0.2
    assert lo["self_bleu"] > hi["self_bleu"]
    assert lo["mean_logprob"] > rows[0.8]["mean_logprob"] > hi["mean_logprob"]
    strategies = {row["strategy"]: row for row in model["by_strategy"]}
    assert set(strategies) == {"greedy", "beam", "top-p"}
    assert strategies["greedy"]["n_samples"] == 1 and "self_bleu" not in strategies["greedy"]
    assert strategies["top-p"]["n_samples"] == 10
    # beam search finds text at least as likely as greedy decoding does
    assert strategies["beam"]["mean_logprob"] >= strategies["greedy"]["mean_logprob"] - 0.05
    dist = model["next_token"]
    assert len(dist["tokens"]) == 20 and len(dist["temperatures"]) >= 3
    ent = [dist["entropy"][f"{t:g}"] for t in dist["temperatures"]]
    assert ent == sorted(ent)  # temperature flattens the distribution
    assert model["training_log"]["val_loss"] and model["training_log"]["train_loss"]
    samples = json.loads((out / "samples.json").read_text(encoding="utf-8"))
    assert len(samples[model["name"]]["temperatures"]["0.2"]) == 10
    # the CLI printed its table and where the report is
    assert "d-2 char" in result.stdout and "T=1.2" in result.stdout
    assert "report.html" in result.stderr


def test_report_markdown_and_html(shakespeare_report):
    out, _ = shakespeare_report
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "![" in md and "(metric_distinct_2_char.png)" in md and "| temperature |" in md
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in html
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert len(srcs) == len(list(out.glob("*.png")))
    assert all(s.startswith("data:image/png;base64,") for s in srcs)  # self-contained
    assert "<script" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium is not installed (scripts/setup.sh installs it when run as root)")
def test_report_images_load_in_headless_chromium(shakespeare_report, tmp_path):
    """Open a copy of report.html in headless Chromium with a probe script that records, after the
    page loaded, whether each <img> decoded (naturalWidth > 0). A deliberately broken image is the
    control that the probe would see a failure."""
    out, _ = shakespeare_report
    page = (out / "report.html").read_text(encoding="utf-8")
    probe = """<img src="data:image/png;base64,bm90IGEgcG5n" data-file="broken-control" alt="">
<script>
window.addEventListener("load", function () {
  var result = Array.prototype.map.call(document.images, function (im) {
    return {file: im.getAttribute("data-file"), complete: im.complete, width: im.naturalWidth, height: im.naturalHeight};
  });
  var pre = document.createElement("pre");
  pre.id = "image-check";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>
"""
    probe_page = tmp_path / "probe.html"
    probe_page.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom", probe_page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<pre id="image-check">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not run (exit {proc.returncode}): {proc.stderr[-2000:]}"
    images = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    control = [im for im in images if im["file"] == "broken-control"]
    plots = [im for im in images if im["file"] != "broken-control"]
    assert control and control[0]["width"] == 0, "the control image should fail to decode"
    assert len(plots) == len(list(out.glob("*.png")))
    for im in plots:
        assert im["complete"] and im["width"] > 100 and im["height"] > 100, im


# --------------------------------------------------------------------------- Chinese


@pytest.fixture(scope="module")
def chinese_model(tmp_path_factory) -> Path:
    """A tiny char LSTM on the first 50,000 characters of 红楼梦, trained for a few seconds from a
    file, so its config.json records the corpus (and analyze finds it without --corpus)."""
    text = corpus_path("hongloumeng.txt").read_text(encoding="utf-8")[:50_000]
    folder = tmp_path_factory.mktemp("hlm")
    src = folder / "hlm_50k.txt"
    src.write_text(text, encoding="utf-8")
    out = folder / "hlm-model"
    TextGenerator.train(str(src), out=out, steps=60, seq_len=48, batch_size=32, lr=5e-3, eval_interval=30, preview_length=30,
                        progress=False, model_options={"hidden_size": 96})
    return out


def _is_cjk(s: str) -> bool:
    return any("CJK" in unicodedata.name(ch, "") for ch in s)


def test_chinese_report_renders_glyphs(chinese_model, tmp_path):
    from xuxie.plotting import configure_matplotlib
    from xuxie.report import analyze

    assert configure_matplotlib() is not None, "no CJK font: scripts/setup.sh installs fonts-wqy-microhei"
    out = tmp_path / "report"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = analyze([chinese_model], out, temperatures="0.5,1.0", samples=4, length=40, prompt="宝玉",
                         strategies="greedy")
    glyph = [str(w.message) for w in caught if "Glyph" in str(w.message) or "missing from" in str(w.message)]
    assert not glyph, glyph
    (model,) = report["models"]
    assert model["corpus"].endswith("hlm_50k.txt") and model["corpus_chars"] == 50_000
    assert all(isinstance(row["ngram8_in_corpus"], float) for row in model["by_temperature"])
    tokens = model["next_token"]["tokens"]
    assert sum(_is_cjk(t) for t in tokens) >= 10, tokens
    assert model["next_token"]["prompt"] == "宝玉"
    png = out / model["next_token"]["plot"]
    assert png.is_file() and png.stat().st_size > 5_000
    # the training run's per-evaluation samples are in the report
    md = (out / "report.md").read_text(encoding="utf-8")
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Samples during training" in md and "step 60" in md and "temperature 1.2" in md
    assert "Samples during training" in html and "宝玉" in html


def test_glyph_check_would_catch_missing_glyphs(tmp_path):
    """Control for the test above: Chinese drawn with a Latin-only font does warn."""
    import matplotlib
    from matplotlib.figure import Figure

    from xuxie.plotting import configure_matplotlib

    configure_matplotlib()
    with matplotlib.rc_context({"font.family": ["DejaVu Sans"]}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = Figure()
        fig.add_subplot().set_title("红楼梦")
        fig.savefig(tmp_path / "x.png")
    assert any("missing from" in str(w.message) for w in caught)


# --------------------------------------------------------------------------- scoring details


def test_batched_logprob_equals_sequence_logprob(small_shakespeare_model):
    from xuxie.decoding import sequence_logprob
    from xuxie.report.collection import ModelRun
    from xuxie.report.scoring import mean_logprob

    tg = small_shakespeare_model
    m = ModelRun("m", tg, None, tg.decoding.prompt_ids("ROMEO:"), list(tg.decoding.suppress))
    texts = tg.generate(11, "ROMEO:", temperature=1.0, max_new_tokens=50, seed=3, include_prompt=False) + ["", " the"]
    mean, count = mean_logprob(m, texts, 50)
    seqs = [tg.tokenizer.encode(t) for t in texts if t]
    expect = sum(sequence_logprob(tg.model, m.prompt_ids, q, m.suppress) for q in seqs) / sum(map(len, seqs))
    assert count == sum(map(len, seqs))
    assert mean == pytest.approx(expect, abs=1e-4)


def test_strided_logprob_for_learned_positions(shakespeare_text):
    """A transformer with learned positions cannot read past its context: samples longer than it
    are scored in half-context strides; within the context that equals the plain score."""
    from xuxie.decoding import sequence_logprob
    from xuxie.report.scoring import strided_logprob

    tg = TextGenerator.train(shakespeare_text[:20_000], arch="transformer", steps=2, batch_size=4, eval_interval=2, preview_length=0,
                             progress=False, model_options={"context": 16, "positions": "learned", "n_layer": 1, "n_head": 2, "n_embd": 32})
    model = tg.model
    assert model.config.context == 16
    prompt = tg.tokenizer.encode("ROMEO: ")
    short = tg.tokenizer.encode("Hello th")  # 7 + 8 = 15 tokens, within the context
    assert strided_logprob(model, prompt, short, [], 16) == pytest.approx(sequence_logprob(model, prompt, short), abs=1e-4)
    long = tg.tokenizer.encode("First Citizen: Before we proceed any further, hear me speak.")
    value = strided_logprob(model, prompt, long, [], 16)
    assert value < 0 and value == value


def test_training_log_and_samples_md_parsing(tmp_path):
    from xuxie.report import read_training_log
    from xuxie.report.collection import samples_md_sections
    from xuxie.report.sections import pick_sections

    (tmp_path / "log.jsonl").write_text(
        '{"event": "train", "step": 50, "loss": 2.5, "loss_avg": 2.7}\n'
        '{"event": "eval", "step": 60, "train_loss": 2.4, "val_loss": 2.3}\n'
        '{"event": "train", "step": 100, "loss": 2.0, "loss_avg": 2.1}\n'
        '{"event": "end", "step": 100, "val_loss": 2.0}\n'
        '{"event": "eval", "st', encoding="utf-8")  # a torn last line
    log = read_training_log(tmp_path)
    assert log == {"train_step": [50.0, 60.0, 100.0], "train_loss": [2.7, 2.4, 2.1], "val_step": [60.0], "val_loss": [2.3]}
    assert read_training_log(tmp_path / "nothing") is None
    md = "".join(f"\n## step {s} · 1 s · val loss 2.0\n\n**temperature 0.2**\n\n```\nline <{s}>\n\nmore\n```\n" for s in range(10))
    sections = samples_md_sections(md)
    assert len(sections) == 10 and sections[3] == ("step 3 · 1 s · val loss 2.0", [("temperature 0.2", "line <3>\n\nmore")])
    picked, omitted = pick_sections(sections, 6)
    assert picked[0] == sections[0] and picked[-1] == sections[-1] and len(picked) + omitted == 10


# --------------------------------------------------------------------------- bad input


def test_missing_model_dir(tmp_path):
    out = tmp_path / "report"
    assert_clear_error(run("analyze", tmp_path / "no-such-model", "--out", out), "does not exist")
    assert not out.exists()


def test_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes").mkdir()
    assert_clear_error(run("analyze", tmp_path / "notes", "--out", tmp_path / "report"), "not a xuxie model directory")


def test_empty_corpus(tiny_model_dir, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    out = tmp_path / "report"
    assert_clear_error(run("analyze", tiny_model_dir, "--corpus", empty, "--out", out), "empty")
    assert not out.exists()


@pytest.mark.parametrize("temps", ["0.2,abc", "hot", "0.5,,1.0", ""])
def test_temperatures_that_do_not_parse(tiny_model_dir, tmp_path, temps):
    out = tmp_path / "report"
    assert_clear_error(run("analyze", tiny_model_dir, "--temperatures", temps, "--out", out), "temperature")
    assert not out.exists()


@pytest.mark.parametrize("args, phrase", [
    (["--samples", "0"], "--samples"),
    (["--length", "0"], "--length"),
    (["--strategies", "greedy,nucleus"], "unknown decoding strategy"),
    (["--heldout", "no-such-heldout.txt"], "does not exist"),
])
def test_other_bad_options(tiny_model_dir, tmp_path, args, phrase):
    out = tmp_path / "report"
    assert_clear_error(run("analyze", tiny_model_dir, *args, "--out", out), phrase)
    assert not out.exists()


def test_empty_heldout_and_out_that_is_a_file(tiny_model_dir, tmp_path):
    empty = tmp_path / "heldout.txt"
    empty.write_text("", encoding="utf-8")
    assert_clear_error(run("analyze", tiny_model_dir, "--heldout", empty, "--out", tmp_path / "r"), "empty")
    file_out = tmp_path / "report.txt"
    file_out.write_text("keep me", encoding="utf-8")
    assert_clear_error(run("analyze", tiny_model_dir, "--out", file_out), "is a file")
    assert file_out.read_text(encoding="utf-8") == "keep me"
    assert_clear_error(run("analyze", tiny_model_dir, "--out", tiny_model_dir), "holds a model")


def test_heldout_scores_and_model_corpus_note(tiny_model_dir, tmp_path, shakespeare_text):
    """A model trained on a string has no corpus file: novelty is skipped with a note, not an error;
    a held-out text gets perplexity and bits per character."""
    heldout = tmp_path / "heldout.txt"
    heldout.write_text(shakespeare_text[-5_000:], encoding="utf-8")
    out = tmp_path / "report"
    result = run("analyze", tiny_model_dir, "--heldout", heldout, "--out", out, "--temperatures", "1.0", "--samples", 2,
                 "--length", 20, "--strategies", "none")
    assert result.exit_code == 0, result.stderr
    assert "pass --corpus" in result.stderr
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (model,) = report["models"]
    assert model["heldout"]["perplexity"] > 1 and model["heldout"]["bits_per_char"] > 0
    assert "ngram8_in_corpus" not in model["by_temperature"][0] and model["by_strategy"] == []
    assert not (out / "metric_ngram8_in_corpus.png").exists()
    assert "Held-out text" in (out / "report.md").read_text(encoding="utf-8")
