"""The analysis plots: training curves, each key metric against temperature, and each model's
next-token distribution at several temperatures. Each is written atomically as a PNG whose bytes
are returned too (the HTML report embeds them)."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..chars import display_token, display_width
from ..fileio import atomic_path
from .settings import KEY_METRICS, TRAINING_CURVES, metric_plot

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]


def _save_png(fig, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return data


def _plot_training(logs: dict[str, dict[str, list[float]]], path: Path) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, log) in enumerate(logs.items()):
        c = _COLOURS[i % len(_COLOURS)]
        if log["train_step"]:
            ax.plot(log["train_step"], log["train_loss"], color=c, alpha=0.55, lw=1.2, label=f"{name} train (moving average)")
        if log["val_step"]:
            ax.plot(log["val_step"], log["val_loss"], color=c, lw=2, ls="--", marker="o", ms=4, label=f"{name} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title("training curves", parse_math=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _plot_metric(key: str, series: dict[str, tuple[list[float], list[float]]], path: Path) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.2, 3.8), layout="constrained")
    ax = fig.add_subplot()
    for i, (name, (xs, ys)) in enumerate(series.items()):
        ax.plot(xs, ys, color=_COLOURS[i % len(_COLOURS)], marker="o", lw=2, label=name)
    ax.set_xlabel("temperature")
    ax.set_ylabel(KEY_METRICS[key][0], parse_math=False)
    ax.set_title(KEY_METRICS[key][1], fontsize=10, parse_math=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _plot_next_token(name: str, dist: dict[str, Any], path: Path, seq2seq: bool = False) -> bytes:
    from matplotlib.figure import Figure

    tokens = dist["tokens"]
    temps = dist["temperatures"]
    fig = Figure(figsize=(max(6.5, 0.42 * len(tokens) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(tokens))
    width = 0.8 / max(1, len(temps))
    cmap = ["#4c72b0", "#55a868", "#dd8452", "#c44e52"]
    for j, t in enumerate(temps):
        key = f"{t:g}"
        ax.bar(x - 0.4 + width * (j + 0.5), dist["probabilities"][key], width, color=cmap[j % len(cmap)],
               label=f"T={key} (top {len(tokens)}: {dist['top_mass'][key]:.0%}, entropy {dist['entropy'][key]:.2f})")
    ax.set_xticks(x)
    ax.set_xticklabels(tokens, fontsize=11, parse_math=False)
    for label, text in zip(ax.get_xticklabels(), tokens):
        label.set_rotation(0 if display_width(text) <= 2 else 90)
    ax.set_ylabel("probability")

    def shown(text: str, limit: int) -> str:
        text = "".join(display_token(ch) for ch in text)
        return text if len(text) <= limit else "…" + text[-limit:]

    if seq2seq:
        where = f"answering “{shown(dist['prompt'], 24)}”"
        where += f", after “{shown(dist['greedy_prefix'], 24)}”" if dist["greedy_prefix"] else ""
    else:
        ctx = dist["prompt"] + dist["greedy_prefix"]
        where = f"after “{shown(ctx, 40)}”" if ctx else "at the start"
    ax.set_title(f"{name}: next token {where}", fontsize=10, parse_math=False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


def draw_plots(results: list[dict[str, Any]], out: Path) -> dict[str, bytes]:
    """Every plot of the analysis ``results`` into ``out``: file name → PNG bytes. Sets each
    result's ``next_token["plot"]`` to its plot's file name."""
    from ..plotting import configure_matplotlib

    configure_matplotlib()
    images: dict[str, bytes] = {}
    logs = {r["name"]: r["training_log"] for r in results if r["training_log"]}
    if logs:
        images[TRAINING_CURVES] = _plot_training(logs, out / TRAINING_CURVES)
    for key in KEY_METRICS:
        series = _metric_series(results, key)
        if series:
            images[metric_plot(key)] = _plot_metric(key, series, out / metric_plot(key))
    for r in results:
        fname = f"next_token_{_safe_name(r['name'])}.png"
        images[fname] = _plot_next_token(r["name"], r["next_token"], out / fname, r["seq2seq"])
        r["next_token"]["plot"] = fname
    return images


def _metric_series(results: list[dict[str, Any]], key: str) -> dict[str, tuple[list[float], list[float]]]:
    """Per model, the temperatures and the finite values of metric ``key`` at them."""
    series = {}
    for r in results:
        pts = [(row["temperature"], row[key]) for row in r["by_temperature"]
               if isinstance(row.get(key), float) and math.isfinite(row[key])]
        if pts:
            series[r["name"]] = ([p[0] for p in pts], [p[1] for p in pts])
    return series
