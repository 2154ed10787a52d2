"""Plotting helpers that render Chinese correctly and never need a display.

Every function here draws on a :class:`matplotlib.figure.Figure` directly (no pyplot state), so it
works headless, in threads and next to a user's own pyplot figures. Call :func:`configure_matplotlib`
before any plotting: it picks the Agg backend and a font with CJK glyphs (DejaVu Sans as the
per-glyph fallback for Latin and symbols), so Chinese labels render instead of empty boxes.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager

from xuxie.chars import display_token, display_width
from xuxie.errors import XuxieError
from xuxie.fileio import atomic_path

log = logging.getLogger(__name__)

#: Fonts tried first, in this order (names as matplotlib's font list spells them).
PREFERRED_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
    "AR PL UKai CN",
    "AR PL UKai",
)
LATIN_FALLBACK = "DejaVu Sans"  # ships with matplotlib, so it is always there
NO_CJK_FONT_HINT = (
    "no font with Chinese (CJK) glyphs was found, so Chinese text in plots will show as empty boxes; "
    "install a CJK font, e.g. `apt-get install fonts-wqy-microhei` or Noto Sans CJK (`apt-get install fonts-noto-cjk`)"
)
_PROBE = "红"
_warned_no_cjk = False


# --------------------------------------------------------------------------- fonts

def _has_glyph(path: str, index: int = 0, char: str = _PROBE) -> bool:
    """Whether the font file (face ``index`` of a .ttc/.otc collection) maps ``char`` in its cmap."""
    from fontTools.ttLib import TTFont  # a matplotlib dependency

    try:
        with TTFont(path, fontNumber=index, lazy=True) as font:
            cmap = font.getBestCmap()
    except Exception:  # unreadable, not a TrueType/OpenType file, face index out of range...
        return False
    return bool(cmap) and ord(char) in cmap


def _fc_list_zh() -> list[tuple[str, int]]:
    """(file, face index) of the fonts fontconfig says cover Chinese; empty when fc-list is missing."""
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "--format", "%{file}\t%{index}\n"],
            capture_output=True, text=True, timeout=20, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    fonts = []
    for line in out.splitlines():
        file, _, index = line.partition("\t")
        if file:
            fonts.append((file, int(index) if index.strip().isdigit() else 0))
    return sorted(set(fonts))


def _renders(name: str) -> bool:
    """Whether matplotlib itself resolves ``name`` to a face whose glyph for the probe character FreeType finds."""
    try:
        path = font_manager.findfont(font_manager.FontProperties(family=name), fallback_to_default=False)
        return font_manager.get_font(path).get_char_index(ord(_PROBE)) != 0
    except Exception:
        return False


@functools.cache
def _cjk_font_name() -> str | None:
    def candidates(entries):
        entries = [e for e in entries if not str(e.fname).lower().endswith(".afm")]
        by_name: dict[str, list] = {}
        for e in entries:
            by_name.setdefault(e.name, []).append(e)
        for name in PREFERRED_CJK_FONTS:
            yield from by_name.get(name, [])
        yield from sorted(entries, key=lambda e: (e.name, str(e.fname)))

    def first_good(entries) -> str | None:
        tried: set[tuple[str, int]] = set()
        for e in candidates(entries):
            key = (str(e.fname), getattr(e, "index", 0))
            if key in tried:
                continue
            tried.add(key)
            if _has_glyph(*key) and _renders(e.name):
                return e.name
        return None

    name = first_good(font_manager.fontManager.ttflist)
    if name is None:  # fonts matplotlib did not scan (e.g. outside its search path) but fontconfig knows
        known = {str(e.fname) for e in font_manager.fontManager.ttflist}
        new = []
        for file, index in _fc_list_zh():
            if file not in known and _has_glyph(file, index):
                try:
                    font_manager.fontManager.addfont(file)
                except Exception:
                    continue
                known.add(file)
                new.append(file)
        if new:
            name = first_good([e for e in font_manager.fontManager.ttflist if str(e.fname) in new])
    log.debug("CJK font for plots: %s", name)
    return name


def cjk_font() -> font_manager.FontProperties | None:
    """A font installed on this machine that has Chinese glyphs, or None.

    The lookup runs once per process (it opens font files): first the fonts in
    :data:`PREFERRED_CJK_FONTS`, then any font in matplotlib's list, then the fonts ``fc-list
    :lang=zh`` reports (registered with matplotlib when it had not seen them). A font only counts
    when its cmap has a glyph for '红' (checked with fontTools) and matplotlib resolves its name to a
    face FreeType can draw that glyph from -- this covers .ttc collections, whose faces matplotlib
    addresses by index. Returns a fresh FontProperties each call (they are mutable).
    """
    name = _cjk_font_name()
    return None if name is None else font_manager.FontProperties(family=name)


cjk_font.cache_clear = _cjk_font_name.cache_clear  # type: ignore[attr-defined]


def configure_matplotlib() -> str | None:
    """Headless backend and CJK-capable fonts for every plot in xuxie; returns the CJK font name (or None).

    * Backend: Agg, unless pyplot was already imported (a notebook or the user's own script chose
      a backend; switching would close their figures). xuxie draws on Figure objects, so it never
      needs a display either way.
    * ``font.family`` = [CJK font, DejaVu Sans]: matplotlib falls back glyph by glyph along that list,
      so Chinese comes from the CJK font and any symbol it lacks (e.g. '␣', '⏎') from DejaVu Sans.
      ``font.sans-serif`` is put in the same order.
    * ``axes.unicode_minus`` off: many CJK fonts lack U+2212, so tick labels use an ASCII '-'.

    Idempotent and cheap after the first call. Without a CJK font it warns once with the fix.
    """
    global _warned_no_cjk
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    rc = matplotlib.rcParams
    rc["axes.unicode_minus"] = False
    name = _cjk_font_name()
    if name is None:
        if not _warned_no_cjk:
            _warned_no_cjk = True
            warnings.warn(NO_CJK_FONT_HINT, RuntimeWarning, stacklevel=2)
        return None
    rc["font.family"] = [name, LATIN_FALLBACK]
    rc["font.sans-serif"] = [name, LATIN_FALLBACK] + [f for f in rc["font.sans-serif"] if f not in (name, LATIN_FALLBACK)]
    return name


# --------------------------------------------------------------------------- attention heatmap

_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
_MAX_INCHES = 40.0
_BASE_FONTSIZE = 10.0
_LONG = 60  # tokens on an axis beyond which labels shrink


def _as_matrix(weights) -> np.ndarray:
    if hasattr(weights, "detach"):  # a torch tensor, possibly on a GPU or requiring grad
        weights = weights.detach().float().cpu().numpy()
    try:
        arr = np.asarray(weights, dtype=float)
    except (TypeError, ValueError) as e:
        raise XuxieError(f"attention weights must be a 2-D array of numbers ({e})") from None
    while arr.ndim > 2 and arr.shape[0] == 1:  # a leading batch/head axis of size 1
        arr = arr[0]
    if arr.ndim != 2:
        raise XuxieError(
            f"attention weights must be 2-D (generated tokens x source tokens), got shape {arr.shape}; average or pick one head first"
        )
    if not np.isfinite(arr).all():
        raise XuxieError("attention weights contain NaN or infinite values")
    return arr


def plot_attention(
    weights,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: str | Path,
    title: str | None = None,
) -> Path:
    """Draw attention weights as a heatmap and save it atomically; returns the path written.

    ``weights[i, j]`` is how much generated token ``target_tokens[i]`` attended to
    ``source_tokens[j]`` (shape ``(len(target_tokens), len(source_tokens))``; numpy array, nested
    lists or a torch tensor; leading axes of size 1 are dropped). Source tokens run along the top
    (single characters upright, longer tokens turned 90 degrees),
    generated tokens down the left, one label per token; spaces show as '␣', newlines as '⏎', tabs
    as '⇥', and labels longer than 16 characters are shortened. The figure grows with the number of
    tokens up to 40 inches a side; past 60 tokens on an axis the labels shrink to fit. Colour runs
    from 0 to the largest weight (viridis), with a colorbar.

    The format follows the suffix: .png (also used when there is no suffix), .pdf or .svg. The image
    is written to a temporary file beside ``path`` and renamed over it, so a crash never leaves a
    half-written image.
    """
    path, fmt = _image_path(path)
    source = [str(t) for t in source_tokens]
    target = [str(t) for t in target_tokens]
    if not source or not target:
        raise XuxieError("plot_attention needs at least one source token and one generated token")
    arr = _as_matrix(weights)
    if arr.shape != (len(target), len(source)):
        raise XuxieError(
            f"attention weights have shape {arr.shape} but there are {len(target)} generated and {len(source)} source tokens; "
            f"expected ({len(target)}, {len(source)})"
        )
    configure_matplotlib()
    fig, dpi = _heatmap(arr, [display_token(t) for t in source], [display_token(t) for t in target], title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def _image_path(path: str | Path) -> tuple[Path, str]:
    """The path to write (``.png`` added when there is no suffix) and its image format."""
    path = Path(path)
    if path.suffix == "":
        path = path.with_suffix(".png")
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise XuxieError(f"cannot save a plot as '{path.suffix}' ({path}); use .png, .pdf or .svg")
    return path, fmt


def _heatmap_size(n_source: int, n_target: int) -> tuple[float, float, float, int]:
    """(font size, width, height in inches, dpi): one label's height per token (about 1.6 x the
    font size), at most 40 inches per side."""
    n = max(n_source, n_target)
    fontsize = _BASE_FONTSIZE if n <= _LONG else max(4.0, _BASE_FONTSIZE * _LONG / n)
    margin = 3.0  # labels, colorbar, title (bbox_inches="tight" trims what is not needed)
    cell = fontsize / 72 * 1.6
    if n * cell > _MAX_INCHES - margin:
        cell = (_MAX_INCHES - margin) / n
        fontsize = cell * 72 / 1.6
    width = min(_MAX_INCHES, max(4.0, n_source * cell + margin))
    height = min(_MAX_INCHES, max(3.0, n_target * cell + margin))
    dpi = 150 if max(width, height) <= 30 else 120  # tiny labels on big plots stay a few pixels tall
    return fontsize, width, height, dpi


def _heatmap(arr: np.ndarray, src_labels: list[str], tgt_labels: list[str], title: str | None):
    """The heatmap figure of ``arr`` (generated tokens down, source tokens across), and its dpi."""
    from matplotlib.figure import Figure

    fontsize, width, height, dpi = _heatmap_size(len(src_labels), len(tgt_labels))
    fig = Figure(figsize=(width, height), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    vmax = float(arr.max()) if arr.max() > 0 else 1.0
    im = ax.imshow(arr, cmap="viridis", vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(len(src_labels)))
    ax.set_yticks(range(len(tgt_labels)))
    ax.set_xticklabels(src_labels, fontsize=fontsize, parse_math=False)
    for tick, text in zip(ax.xaxis.get_major_ticks(), src_labels):
        # single characters (a CJK character, a '␣') stay upright, longer tokens turn
        for label in (tick.label1, tick.label2):
            label.set_rotation(0 if display_width(text) <= 2 else 90)
    ax.set_yticklabels(tgt_labels, fontsize=fontsize, parse_math=False)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    ax.tick_params(length=2)
    label_size = max(fontsize, 8.0)
    ax.set_xlabel("source tokens", fontsize=label_size)
    ax.set_ylabel("generated tokens", fontsize=label_size)
    cbar = fig.colorbar(im, ax=ax, fraction=0.04 if width > 8 else 0.06, pad=0.01)
    cbar.ax.tick_params(labelsize=max(fontsize, 7.0))
    cbar.set_label("attention weight", fontsize=label_size)
    if title:
        fig.suptitle(title, fontsize=max(fontsize + 2, 10.0), parse_math=False)
    return fig, dpi


__all__ = ["PREFERRED_CJK_FONTS", "cjk_font", "configure_matplotlib", "plot_attention"]
