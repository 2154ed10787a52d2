"""Attention heatmaps render Chinese (no missing glyphs, atomic writes) and BLEU/chrF score Chinese per character."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from xuxie.chars import display_token
from xuxie.errors import XuxieError
from xuxie.plotting import cjk_font, configure_matplotlib, plot_attention
from xuxie.scoring import bleu_chrf, is_chinese, sentence_bleu_chrf

SOURCE = list("床前明月光，疑是地上霜。") + [" ", "\n", "举头"]
TARGET = list("举头望明月，低头思故乡。")


def _fc_list_zh() -> str:
    if shutil.which("fc-list") is None:
        return ""
    return subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout.strip()


def _weights(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    w = np.random.default_rng(seed).random((rows, cols)) ** 3
    return w / w.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------- fonts

def test_cjk_font_found_and_has_glyph():
    if not _fc_list_zh():
        pytest.skip("no Chinese font installed (`fc-list :lang=zh` prints nothing); run scripts/setup.sh or apt-get install "
                    "fonts-wqy-microhei")
    from matplotlib import font_manager

    prop = cjk_font()
    assert prop is not None
    path = font_manager.findfont(prop, fallback_to_default=False)
    assert font_manager.get_font(path).get_char_index(ord("红")) != 0
    assert cjk_font() is not prop  # fresh (mutable) object each call, same answer
    assert cjk_font().get_family() == prop.get_family()


def test_configure_matplotlib_puts_cjk_font_first():
    import matplotlib

    name = configure_matplotlib()
    if name is None:
        pytest.skip("no CJK font on this machine")
    assert list(matplotlib.rcParams["font.family"])[:2] == [name, "DejaVu Sans"]
    assert matplotlib.rcParams["font.sans-serif"][0] == name
    assert matplotlib.rcParams["axes.unicode_minus"] is False


def test_fc_list_fallback_finds_font_matplotlib_did_not_scan(monkeypatch):
    """A CJK font fontconfig knows but matplotlib's list lacks is registered and used."""
    from matplotlib import font_manager

    import xuxie.plotting as plotting

    if not _fc_list_zh():
        pytest.skip("no Chinese font installed (`fc-list :lang=zh` prints nothing)")
    zh_files = {file for file, _ in plotting._fc_list_zh()}
    without = [e for e in font_manager.fontManager.ttflist if str(e.fname) not in zh_files]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", without)
    font_manager.fontManager._findfont_cached.cache_clear()
    plotting.cjk_font.cache_clear()
    try:
        prop = plotting.cjk_font()
        assert prop is not None
        assert str(os.fspath(font_manager.findfont(prop, fallback_to_default=False))) in zh_files
    finally:
        monkeypatch.undo()
        font_manager.fontManager._findfont_cached.cache_clear()
        plotting.cjk_font.cache_clear()


def test_no_cjk_font_warns_once_with_fix(monkeypatch):
    import matplotlib

    import xuxie.plotting as plotting

    monkeypatch.setattr(plotting, "_cjk_font_name", lambda: None)
    monkeypatch.setattr(plotting, "_warned_no_cjk", False)
    with matplotlib.rc_context(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert plotting.configure_matplotlib() is None
        assert plotting.configure_matplotlib() is None
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "apt-get install fonts-wqy-microhei" in messages[0] and "Noto Sans CJK" in messages[0]


# --------------------------------------------------------------------------- attention heatmap

def test_plot_attention_chinese_png(tmp_path):
    import matplotlib.image as mpimg

    if cjk_font() is None:
        pytest.skip("no CJK font on this machine")
    out = tmp_path / "attn.png"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = plot_attention(_weights(len(TARGET), len(SOURCE)), SOURCE, TARGET, out, title="注意力：静夜思")
    missing = [str(w.message) for w in caught if "missing" in str(w.message).lower() or "glyph" in str(w.message).lower()]
    assert missing == []
    assert result == out
    assert out.stat().st_size > 5_000
    img = mpimg.imread(out)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["attn.png"]  # no temp file left behind


def test_plot_attention_formats_and_long_sequences(tmp_path):
    n = 150
    src = [f"词{i}" for i in range(n)]
    tgt = list("天地玄黄宇宙洪荒" * 20)[:n]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = plot_attention(_weights(n, n, seed=1), src, tgt, tmp_path / "big")  # no suffix -> .png
        pdf = plot_attention(_weights(3, 2), ["a b", "\t"], ["你", "好", ""], tmp_path / "small.pdf")
        svg = plot_attention(_weights(3, 2).tolist(), ["$x$", "y"], ["你", "好", "吗"], tmp_path / "small.svg")
    assert not [w for w in caught if "glyph" in str(w.message).lower()]
    assert big.suffix == ".png" and big.stat().st_size > 50_000
    assert pdf.read_bytes().startswith(b"%PDF")
    assert b"<svg" in svg.read_bytes()[:2000]
    import matplotlib.image as mpimg

    h, w = mpimg.imread(big).shape[:2]
    assert max(h, w) <= 40 * 150 + 10  # figure capped at 40 inches


def test_plot_attention_validation(tmp_path):
    with pytest.raises(XuxieError, match=r"expected \(3, 2\)"):
        plot_attention(np.ones((2, 3)) / 3, ["a", "b"], ["x", "y", "z"], tmp_path / "a.png")
    with pytest.raises(XuxieError, match="2-D"):
        plot_attention(np.ones((2, 2, 2)), ["a", "b"], ["x", "y"], tmp_path / "a.png")
    with pytest.raises(XuxieError, match="NaN"):
        plot_attention(np.full((1, 1), np.nan), ["a"], ["x"], tmp_path / "a.png")
    with pytest.raises(XuxieError, match=".jpg"):
        plot_attention(np.ones((1, 1)), ["a"], ["x"], tmp_path / "a.jpg")
    with pytest.raises(XuxieError, match="at least one"):
        plot_attention(np.ones((0, 0)), [], [], tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []
    # a leading batch/head axis of size 1 is accepted
    assert plot_attention(np.ones((1, 2, 1)), ["a"], ["x", "y"], tmp_path / "ok.png").exists()


def test_plot_attention_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def boom(self, *args, **kwargs):
        with open(args[0], "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    (tmp_path / "keep.png").write_bytes(b"old image")
    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        plot_attention(np.ones((1, 1)), ["a"], ["x"], tmp_path / "keep.png")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    assert (tmp_path / "keep.png").read_bytes() == b"old image"  # the old file is untouched


def test_display_token_makes_whitespace_visible():
    assert display_token(" ") == "␣"
    assert display_token("\n") == "⏎"
    assert display_token("a b\n") == "a␣b⏎"
    assert display_token("") == "∅"
    assert display_token("\x00") == "\\x00"
    long = display_token("x" * 50)
    assert len(long) == 16 and long.endswith("…")


# --------------------------------------------------------------------------- scoring

def test_is_chinese():
    assert is_chinese("床前明月光，疑是地上霜。")
    assert is_chinese(["今天 天气 很好", "我们 去 公园"])
    assert not is_chinese("To be, or not to be: that is the question.")
    assert not is_chinese("I met 王小明 in Beijing last summer, and we talked for hours.")
    assert not is_chinese(["", "   "])


def test_identical_texts_score_100():
    for texts in (["the cat sat on the mat", "a dog barked"], ["床前明月光，疑是地上霜。", "举头望明月"]):
        scores = bleu_chrf(texts, list(texts))
        assert scores["bleu"] == pytest.approx(100.0)
        assert scores["chrf"] == pytest.approx(100.0)
        assert scores["n"] == 2


def test_partial_overlap_matches_sacrebleu():
    import sacrebleu

    hyps = ["the cat sat on a mat today", "he read the book quickly"]
    refs = ["the cat sat on the mat", "he quickly read the book"]
    scores = bleu_chrf(hyps, refs)
    assert scores["tokenize"] == "13a"
    assert 0 < scores["bleu"] < 100
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)

    zh_h, zh_r = ["今天天气很好我们去公园散步"], ["今天天气不错我们去公园散步"]
    zh = bleu_chrf(zh_h, zh_r)
    assert zh["tokenize"] == "zh"
    assert zh["bleu"] == pytest.approx(sacrebleu.corpus_bleu(zh_h, [zh_r], tokenize="zh").score)


def test_chinese_is_scored_per_character():
    ref = "床前明月光疑是地上霜"  # 10 characters, no spaces
    hyp = "床前明月光疑是地下霜"  # one character changed
    scores = bleu_chrf([hyp], [ref])
    assert scores["tokenize"] == "zh"
    assert scores["bleu"] > 40  # one token per character: most n-grams still match
    assert bleu_chrf([hyp], [ref], tokenize="13a")["bleu"] == 0.0  # the whole sentence as one token
    assert 40 < scores["chrf"] < 100


def test_short_chinese_gets_credit():
    # sacreBLEU's plain corpus BLEU gives 0 here (no 4-grams); effective order scores the bigram match
    assert bleu_chrf(["你好"], ["你好"])["bleu"] == pytest.approx(100.0)
    s = sentence_bleu_chrf("你好吗", "你好啊")
    assert s["n"] == 1 and s["tokenize"] == "zh" and 0 < s["bleu"] < 100


def test_scoring_errors():
    with pytest.raises(XuxieError, match="empty"):
        bleu_chrf([], [])
    with pytest.raises(XuxieError, match="2 hypotheses but 1 references"):
        bleu_chrf(["a", "b"], ["a"])
    with pytest.raises(XuxieError, match="lists of strings"):
        bleu_chrf("abc", "abc")
    with pytest.raises(XuxieError, match="unknown BLEU tokenizer"):
        bleu_chrf(["a"], ["a"], tokenize="nope")
    with pytest.raises(XuxieError, match="not a string"):
        bleu_chrf(["a", None], ["a", "b"])
