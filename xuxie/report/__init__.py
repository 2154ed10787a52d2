"""``xuxie analyze``: what models write, measured per temperature and decoding strategy, as a report.

:func:`analyze` loads one or more models, writes ``samples`` texts at each temperature (and with
greedy decoding, beam search and top-p sampling), scores them with :mod:`xuxie.analysis`
(diversity, repetition, self-BLEU, novelty against the training corpus, lengths) and with the
model itself (mean log-probability per token), scores a held-out text (perplexity, bits per
character), draws plots and writes, atomically, into ``out_dir``:

``report.md``
    tables, example samples, the training run's per-evaluation samples, links to the plots
``report.html``
    the same, self-contained (plots embedded as base64 data URIs)
``metrics.json``
    every number (per model × temperature, per strategy, held-out scores, next-token
    distributions, timings)
``samples.json``
    every generated text
``*.png``
    ``training_curves.png``, ``metric_<name>.png`` (a metric against temperature, one line per
    model) and ``next_token_<model>.png`` (the next-token distribution at several temperatures)

The CLI (``xuxie analyze``) only parses options and prints the summary.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import analysis
from ..errors import XuxieError
from ..fileio import atomic_path, atomic_write_text
from ..limits import check_analysis_size
from ..threads import threads_scope

DEFAULT_TEMPERATURES: tuple[float, ...] = (0.2, 0.5, 0.8, 1.0, 1.2)
#: decoding strategies compared besides the temperature sweep: (description, generate() options,
#: whether it draws ``samples`` texts or one)
STRATEGIES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "greedy": ("greedy (temperature 0), 1 sample", {"temperature": 0.0}, False),
    "beam": ("beam search, 4 beams, 1 sample", {"temperature": 0.0, "num_beams": 4}, False),
    "top-p": ("top-p 0.9 at temperature 1.0", {"temperature": 1.0, "top_p": 0.9}, True),
}
DEFAULT_STRATEGIES: tuple[str, ...] = tuple(STRATEGIES)

#: the metrics plotted against temperature and shown in the tables: key → (short name, long name)
KEY_METRICS: dict[str, tuple[str, str]] = {
    "distinct_2_char": ("distinct-2 char", "distinct-2, characters (higher = more varied)"),
    "distinct_2_token": ("distinct-2 tok", "distinct-2, tokens (higher = more varied)"),
    "repetition_4": ("repetition-4", "repetition: share of a sample's char 4-grams seen earlier in it"),
    "self_bleu": ("self-BLEU", "self-BLEU across samples (higher = samples more alike)"),
    "ngram8_in_corpus": ("8-grams in corpus", "share of char 8-grams found in the training corpus (lower = more novel)"),
    "longest_copy_max": ("longest copy", "longest span copied verbatim from the corpus (chars, max over samples)"),
    "mean_logprob": ("mean log p", "mean log-probability per token under the model (nats)"),
}
#: column headings for narrow tables (the CLI)
SHORT_NAMES: dict[str, str] = {"distinct_2_char": "d-2 char", "distinct_2_token": "d-2 tok", "repetition_4": "rep-4",
                               "self_bleu": "self-BLEU", "ngram8_in_corpus": "8g in corpus", "longest_copy_max": "copy",
                               "mean_logprob": "log p"}
#: more columns for the full tables (report.md / report.html)
TABLE_METRICS: dict[str, str] = {
    "distinct_1_char": "d-1 char", "distinct_2_char": "d-2 char", "distinct_3_char": "d-3 char",
    "distinct_1_token": "d-1 tok", "distinct_2_token": "d-2 tok", "distinct_3_token": "d-3 tok",
    "repetition_4": "rep-4", "longest_repeat_mean": "longest repeat (mean)", "self_bleu": "self-BLEU",
    "ngram8_in_corpus": "8-grams in corpus", "longest_copy_mean": "longest copy (mean)", "longest_copy_max": "longest copy (max)",
    "mean_logprob": "mean log p", "length_mean": "chars (mean)", "tokens_mean": "tokens (mean)",
}
EXAMPLES_PER_TEMPERATURE = 2
NEXT_TOKEN_TOP = 20
NEXT_TOKEN_CERTAIN = 0.7  # the next-token plot skips (greedily) steps whose top token is at least this likely
NEXT_TOKEN_WALK = 50  # ... for at most this many tokens
SAMPLES_MD_SECTIONS = 6  # evaluations of samples.md shown (evenly spaced, first and last included)
SAMPLES_MD_BLOCK_CHARS = 1500

Progress = Callable[[str], None]


# --------------------------------------------------------------------------- settings


def parse_temperatures(value: str | float | Sequence[float]) -> list[float]:
    """Temperatures as given (``"0.2,0.5,1.0"``, a number or a list), checked, sorted and without
    duplicates; 0 means greedy."""
    from ..api import temperature_list

    return sorted(set(temperature_list(value)))


def parse_strategies(value: str | Sequence[str] | None) -> list[str]:
    """Strategy names from a comma list (``"greedy,beam,top-p"``; ``""`` or ``"none"``: none)."""
    if value is None:
        return []
    names = [s.strip().lower() for s in value.split(",")] if isinstance(value, str) else [str(s).strip().lower() for s in value]
    names = [s for s in names if s and s != "none"]
    for s in names:
        if s not in STRATEGIES:
            raise XuxieError(f"unknown decoding strategy {s!r}; choose from {', '.join(STRATEGIES)} (a comma list, or none)")
    return list(dict.fromkeys(names))


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise XuxieError(f"{what} must be a positive whole number, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- models and corpora


@dataclass
class _Model:
    name: str
    tg: Any  # TextGenerator
    path: Path | None
    prompt_ids: list[int] = field(default_factory=list)
    suppress: list[int] = field(default_factory=list)
    corpus_key: tuple | None = None
    corpus_label: str | None = None
    corpus_note: str | None = None


def _load_models(models: Sequence[Any], device: str | None) -> list[_Model]:
    from ..api import TextGenerator

    if isinstance(models, (str, Path)) or isinstance(models, TextGenerator):
        models = [models]
    models = list(models)
    if not models:
        raise XuxieError("give at least one model directory to analyse")
    loaded: list[_Model] = []
    for m in models:
        if isinstance(m, TextGenerator):
            loaded.append(_Model("", m, m.path))
        elif isinstance(m, (str, Path)):
            loaded.append(_Model("", TextGenerator.load(m, device), Path(m)))
        else:
            raise XuxieError(f"a model must be a model directory or a TextGenerator, got {type(m).__name__}")
    # names: the directory name, made unique
    seen: dict[str, int] = {}
    for i, m in enumerate(loaded, 1):
        base = (m.path.resolve().name if m.path is not None else "") or f"model{i}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        m.name = base if k == 0 else f"{base}-{k + 1}"
    for m in loaded:
        m.tg.model.eval()
    return loaded


def _corpus_from_config(config: dict[str, Any]) -> tuple[tuple | None, str | None, str | None]:
    """(cache key, label, note) of the training corpus a model's config.json records."""
    c = config.get("corpus") or {}
    sources = [str(s) for s in c.get("sources") or []]
    if not sources:
        return None, None, "the model's config.json records no training corpus; pass --corpus to measure novelty"
    if any(s == "<text>" for s in sources):
        return None, None, "the model was trained on a text string, not a file; pass --corpus to measure novelty"
    missing = [s for s in sources if not Path(s).exists()]
    if missing:
        return None, None, f"the training corpus {missing[0]} is not there any more; pass --corpus to measure novelty"
    mode = config.get("mode", "text")
    if c.get("label_column"):
        key = ("labelled", tuple(sources), c["label_column"], c.get("text_column", "text"))
    elif mode == "pairs":
        key = ("pairs", tuple(sources)) if c.get("pairs_from", "files") == "files" else ("text", tuple(sources))
    else:
        key = (mode if mode in ("text", "lines") else "text", tuple(sources))
    return key, ", ".join(sources), None


def _read_corpus_text(key: tuple) -> str:
    from ..corpus import read_corpus, read_labelled, read_pairs

    kind, sources = key[0], list(key[1])
    if kind == "labelled":
        return read_labelled(sources, key[2], key[3]).text
    if kind == "pairs":
        return read_pairs(sources).text
    return read_corpus(sources, kind).text


def _corpus_key_for_path(path: str | Path) -> tuple:
    from ..corpus import PAIR_SUFFIXES

    return ("pairs" if str(path).lower().endswith(PAIR_SUFFIXES) else "text", (str(path),))


# --------------------------------------------------------------------------- scoring


@torch.inference_mode()
def _strided_logprob(model, prompt_ids: list[int], new_ids: list[int], suppress: list[int], context: int) -> float:
    """Sum of log p(new tokens) for a model that cannot read more than ``context`` tokens (learned
    positions): each token is scored with up to ``context - 1`` tokens before it, in windows
    advancing by half a context."""
    seq = torch.tensor(prompt_ids + new_ids, dtype=torch.long, device=model.device)
    total, nxt, step = 0.0, len(prompt_ids), max(1, context // 2)
    while nxt < len(seq):
        end = min(len(seq), nxt + step)
        lo = max(0, end - context)
        logits, _ = model(seq[None, lo:end - 1], None)
        logits = logits[0].float()
        if suppress:
            logits[:, suppress] = float("-inf")
        logp = logits.log_softmax(-1)
        rows = torch.arange(nxt - lo - 1, end - lo - 1, device=model.device)
        total += float(logp[rows, seq[nxt:end]].sum())
        nxt = end
    return total


@torch.inference_mode()
def _batched_logprobs(model, prompt_ids: list[int], seqs: list[list[int]], suppress: list[int], pad: int,
                      batch: int = 8) -> list[float]:
    """Sum of log p(each of ``seqs`` after ``prompt_ids``) for a causal language model: the
    sequences are right-padded and scored together, ``batch`` at a time (one forward each)."""
    sums: list[float] = []
    P = len(prompt_ids)
    for lo in range(0, len(seqs), batch):
        chunk = seqs[lo:lo + batch]
        L = max(len(q) for q in chunk)
        x = torch.full((len(chunk), P + L), pad, dtype=torch.long)
        x[:, :P] = torch.tensor(prompt_ids, dtype=torch.long)
        for i, q in enumerate(chunk):
            x[i, P:P + len(q)] = torch.tensor(q, dtype=torch.long)
        x = x.to(model.device)
        logits, _ = model(x[:, :-1], None)
        logits = logits[:, P - 1:].float()
        if suppress:
            logits[..., suppress] = float("-inf")
        logp = logits.log_softmax(-1).gather(2, x[:, P:, None])[..., 0]
        for i, q in enumerate(chunk):
            sums.append(float(logp[i, :len(q)].sum()))
    return sums


def _mean_logprob(m: _Model, texts: Sequence[str], length: int) -> tuple[float, int]:
    """(mean log-probability per token, tokens scored) of ``texts`` after the model's prompt
    ids, re-encoded with the model's tokenizer. A lines/seq2seq sample that stopped before
    ``length`` tokens also scores its ``<eos>``."""
    from ..decoding import sequence_logprob

    tok, model = m.tg.tokenizer, m.tg.model
    ends = m.tg.decoding.eos_id is not None
    context = getattr(model.config, "context", None)
    learned = getattr(model.config, "positions", None) == "learned"
    seqs = []
    for t in texts:
        ids = tok.encode(t) if t else []
        if ends and len(ids) < length:
            ids = ids + [tok.eos_id]
        if ids:
            seqs.append(ids)
    if not seqs:
        return float("nan"), 0
    count = sum(len(q) for q in seqs)
    if m.tg.is_seq2seq:
        total = sum(sequence_logprob(model, m.prompt_ids, q, m.suppress) for q in seqs)
    elif learned and context and len(m.prompt_ids) + max(len(q) for q in seqs) > context:
        total = sum(_strided_logprob(model, m.prompt_ids, q, m.suppress, int(context)) for q in seqs)
    else:
        total = sum(_batched_logprobs(model, m.prompt_ids, seqs, m.suppress, tok.pad_id))
    return total / count, count


def _score(m: _Model, texts: list[str], index, length: int) -> dict[str, float]:
    metrics = analysis.summarize(texts, index)
    metrics["mean_logprob"], metrics["logprob_tokens"] = _mean_logprob(m, texts, length)
    return metrics


@torch.inference_mode()
def _next_token_logits(m: _Model) -> tuple[torch.Tensor, list[int]]:
    """Logits of the next token at the first *uncertain* step: after the prompt and as many greedy
    tokens (at most :data:`NEXT_TOKEN_WALK`) as it takes to reach a step whose most likely token
    has less than :data:`NEXT_TOKEN_CERTAIN` probability (right after a prompt such as "ROMEO:"
    the line break is nearly certain, and temperature has nothing to reshape). Returns the logits
    and the greedy tokens walked."""
    model = m.tg.model
    eos = m.tg.tokenizer.eos_id

    def masked(row: torch.Tensor) -> torch.Tensor:
        row = row.float().cpu().clone()
        if m.suppress:
            row[m.suppress] = float("-inf")
        return row

    logits, state = model.prefill(torch.tensor([m.prompt_ids], dtype=torch.long, device=model.device))
    logits = masked(logits[0, -1])
    walked: list[int] = []
    while len(walked) < NEXT_TOKEN_WALK:
        p = logits.softmax(-1)
        top = int(p.argmax())
        if float(p[top]) < NEXT_TOKEN_CERTAIN or top == eos:
            break
        walked.append(top)
        logits, state = model.step(torch.tensor([top], dtype=torch.long, device=model.device), state)
        logits = masked(logits[0])
    return logits, walked


def _probs_at(logits: torch.Tensor, t: float) -> torch.Tensor:
    if t == 0:
        p = torch.zeros_like(logits)
        p[int(logits.argmax())] = 1.0
        return p
    return (logits / t).softmax(-1)


def _plot_temperatures(temperatures: Sequence[float]) -> list[float]:
    """3–4 temperatures for the next-token plot: spread over the analysed ones (without 0)."""
    ts = sorted({t for t in temperatures if t > 0})
    if len(ts) < 3:
        return [0.2, 0.5, 1.0, 1.2]
    if len(ts) <= 4:
        return ts
    picks = sorted({ts[round(i * (len(ts) - 1) / 3)] for i in range(4)})
    return picks


def _token_label(m: _Model, token_id: int) -> str:
    from ..chars import display_token as _display_token

    tok = m.tg.tokenizer
    if token_id == tok.eos_id:
        return "<eos>"
    return _display_token(tok.piece(token_id))


def next_token_distribution(m: _Model, temperatures: Sequence[float], top: int = NEXT_TOKEN_TOP) -> dict[str, Any]:
    """The ``top`` most likely next tokens and their probability at each temperature (with the
    share of probability they hold and the entropy of the whole distribution, in nats), at the
    first uncertain step after the prompt (see :func:`_next_token_logits`)."""
    logits, walked = _next_token_logits(m)
    finite = torch.isfinite(logits)
    k = min(top, int(finite.sum()))
    order = torch.argsort(logits, descending=True)[:k].tolist()
    tok = m.tg.tokenizer
    out: dict[str, Any] = {"prompt": "".join("" if i == tok.bos_id else tok.piece(i) for i in m.prompt_ids),
                           "greedy_prefix": tok.decode(walked), "greedy_steps": len(walked),
                           "token_ids": order, "tokens": [_token_label(m, i) for i in order],
                           "temperatures": list(temperatures), "probabilities": {}, "top_mass": {}, "entropy": {}}
    for t in temperatures:
        p = _probs_at(logits, t)
        nz = p[p > 0]
        out["probabilities"][f"{t:g}"] = [float(p[i]) for i in order]
        out["top_mass"][f"{t:g}"] = float(p[order].sum())
        out["entropy"][f"{t:g}"] = float(-(nz * nz.log()).sum())
    return out


# --------------------------------------------------------------------------- training log


def read_training_log(path: Path | None) -> dict[str, list[float]] | None:
    """Training-loss and validation-loss points (step, loss) from a model's log.jsonl: the
    training loss is the trainer's moving average (``loss_avg`` of the ``train`` records every
    ``log_every`` steps, and ``train_loss`` of each ``eval`` record), the validation loss that of
    each ``eval`` record. ``None`` when there is no log."""
    if path is None or not (path / "log.jsonl").is_file():
        return None
    train_steps, train_loss, val_steps, val_loss = [], [], [], []
    for line in (path / "log.jsonl").read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line after an interruption
        if not isinstance(rec, dict) or not isinstance(rec.get("step"), (int, float)):
            continue
        ev = rec.get("event")
        if ev == "train" and isinstance(rec.get("loss_avg", rec.get("loss")), (int, float)):
            train_steps.append(float(rec["step"]))
            train_loss.append(float(rec.get("loss_avg", rec.get("loss"))))
        elif ev == "eval":
            if isinstance(rec.get("train_loss"), (int, float)) and math.isfinite(rec["train_loss"]):
                train_steps.append(float(rec["step"]))
                train_loss.append(float(rec["train_loss"]))
            if isinstance(rec.get("val_loss"), (int, float)) and math.isfinite(rec["val_loss"]):
                val_steps.append(float(rec["step"]))
                val_loss.append(float(rec["val_loss"]))
    if not train_steps and not val_steps:
        return None
    order = sorted(range(len(train_steps)), key=lambda i: train_steps[i])  # eval records fall between train records
    train_steps, train_loss = [train_steps[i] for i in order], [train_loss[i] for i in order]
    return {"train_step": train_steps, "train_loss": train_loss, "val_step": val_steps, "val_loss": val_loss}


def _samples_md_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """samples.md as (heading, [(label, block text)]) per evaluation."""
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    label, block, fenced = "", [], False
    for line in text.split("\n"):
        if fenced:
            if line.strip() == "```":
                fenced = False
                if sections:
                    sections[-1][1].append((label, "\n".join(block)))
                label, block = "", []
            else:
                block.append(line)
        elif line.startswith("## "):
            sections.append((line[3:].strip(), []))
        elif line.startswith("```"):
            fenced, block = True, []
        elif line.startswith("**") and line.rstrip().endswith("**"):
            label = line.strip().strip("*")
    return sections


def _pick_sections(sections: list, k: int = SAMPLES_MD_SECTIONS) -> tuple[list, int]:
    if len(sections) <= k:
        return sections, 0
    idx = sorted({round(i * (len(sections) - 1) / (k - 1)) for i in range(k)})
    return [sections[i] for i in idx], len(sections) - len(idx)


def _clip(text: str, limit: int = SAMPLES_MD_BLOCK_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + " …"


# --------------------------------------------------------------------------- plots

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

    from ..chars import display_token as _display_token
    from ..chars import display_width as _width

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
        label.set_rotation(0 if _width(text) <= 2 else 90)
    ax.set_ylabel("probability")

    def shown(text: str, limit: int) -> str:
        text = "".join(_display_token(ch) for ch in text)
        return text if len(text) <= limit else "…" + text[-limit:]

    if seq2seq:
        where = f"answering “{shown(dist['prompt'], 24)}”" + (f", after “{shown(dist['greedy_prefix'], 24)}”" if dist["greedy_prefix"] else "")
    else:
        ctx = dist["prompt"] + dist["greedy_prefix"]
        where = f"after “{shown(ctx, 40)}”" if ctx else "at the start"
    ax.set_title(f"{name}: next token {where}", fontsize=10, parse_math=False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    return _save_png(fig, path)


def _safe_name(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


# --------------------------------------------------------------------------- the analysis


@threads_scope("decode")
def analyze(models: Sequence[Any] | Any, out_dir: str | Path, corpus: str | Path | None = None, heldout: str | Path | None = None,
            temperatures: str | Sequence[float] = DEFAULT_TEMPERATURES, samples: int = 20, length: int = 200, prompt: str = "",
            strategies: str | Sequence[str] | None = DEFAULT_STRATEGIES, seed: int | None = 0, device: str | None = None,
            progress: Progress | None = None) -> dict[str, Any]:
    """Analyse what one or more models write; write the report into ``out_dir``; return the metrics.

    ``models``: model directories or loaded :class:`~xuxie.TextGenerator` objects. ``corpus``: the
    training text novelty is measured against (a file or named corpus; default: what each model's
    config.json records). ``heldout``: a text file scored for perplexity and bits per character
    (seq2seq models: a pairs file, or a plain text paired as in training). ``temperatures``: a list
    or a comma list. ``samples`` texts of ``length`` tokens are written per model × temperature
    (one batch, ``seed``), after ``prompt`` (seq2seq models answer it; it is required for them).
    ``strategies``: any of ``greedy``, ``beam`` (4 beams) and ``top-p`` (0.9 at temperature 1).

    Returns the content of ``metrics.json`` plus ``files`` (paths written).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    temps = parse_temperatures(temperatures)
    strats = parse_strategies(strategies)
    samples = _check_count(samples, "--samples")
    length = _check_count(length, "--length")
    check_analysis_size(samples, length)  # before any model is loaded
    if not isinstance(prompt, str):
        raise XuxieError(f"the prompt must be a string, got {type(prompt).__name__}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise XuxieError(f"--seed must be a whole number, got {seed!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise XuxieError(f"--out {out} is a file; give a folder for the report")
    from ..checkpoint import is_model_dir

    if is_model_dir(out):
        raise XuxieError(f"--out {out} holds a model; write the report to another folder")
    heldout_text: str | None = None
    if heldout is not None:
        hp = Path(heldout)
        if not hp.is_file():
            raise XuxieError(f"held-out file {hp} does not exist; give a text file to score")

    # -- models, prompts, corpora (every check before any work) -----------------------------
    t0 = time.perf_counter()
    runs = _load_models(models, device)
    for m in runs:
        tg = m.tg
        if tg.is_seq2seq and not prompt.strip():
            raise XuxieError(f"{m.name} is a seq2seq model, which answers an input: give one with --prompt")
        m.prompt_ids = tg.decoding.prompt_ids(prompt)
        m.suppress = list(tg.decoding.suppress)
    load_seconds = time.perf_counter() - t0
    texts_by_key: dict[tuple, str] = {}
    if corpus is not None:
        key = _corpus_key_for_path(corpus)
        from .corpus import read_corpus, read_pairs

        c = read_pairs([corpus]) if key[0] == "pairs" else read_corpus(corpus, "text")
        texts_by_key[key] = c.text
        label = ", ".join(c.sources) or str(corpus)
        for m in runs:
            m.corpus_key, m.corpus_label = key, label
    else:
        for m in runs:
            m.corpus_key, m.corpus_label, m.corpus_note = _corpus_from_config(m.tg.config)
    if heldout is not None:
        from .corpus import read_text_file

        heldout_text, _ = read_text_file(Path(heldout))
        if not heldout_text.strip():
            raise XuxieError(f"held-out file {heldout} is empty; give a file with text in it")

    # -- corpus indexes: one per distinct corpus -----------------------------------------------
    indexes: dict[tuple, analysis.CorpusIndex] = {}
    index_seconds = 0.0
    for m in runs:
        if m.corpus_key is None or m.corpus_key in indexes:
            continue
        t0 = time.perf_counter()
        say(f"indexing the training corpus {m.corpus_label}")
        text = texts_by_key.get(m.corpus_key)
        if text is None:
            text = _read_corpus_text(m.corpus_key)
        indexes[m.corpus_key] = analysis.CorpusIndex(text)
        index_seconds += time.perf_counter() - t0

    # -- per model ---------------------------------------------------------------------------
    plot_temps = _plot_temperatures(temps)
    results: list[dict[str, Any]] = []
    all_samples: dict[str, Any] = {}
    gen_seconds = score_seconds = 0.0
    for m in runs:
        tg = m.tg
        index = indexes.get(m.corpus_key) if m.corpus_key is not None else None
        cfg = tg.config
        res: dict[str, Any] = {
            "name": m.name, "path": str(m.path) if m.path is not None else None, "arch": cfg.get("arch"),
            "mode": tg.mode, "tokenizer": cfg.get("tokenizer"), "parameters": tg.model.num_parameters(),
            "seq2seq": tg.is_seq2seq, "training": {k: v for k, v in (cfg.get("results") or {}).items() if isinstance(v, (int, float))},
            "corpus": m.corpus_label, "corpus_chars": len(index) if index is not None else None,
            "notes": [m.corpus_note] if m.corpus_note else [],
        }
        # held-out text
        if heldout_text is not None:
            say(f"{m.name}: scoring the held-out text")
            if tg.is_seq2seq:
                r = tg.evaluate_pairs(tg.read_pairs_for_eval(Path(heldout)), decode=False)
                res["heldout"] = {k: float(r[k]) for k in ("loss", "perplexity", "bits_per_char")} | {"pairs": int(r["pairs"])}
            else:
                r = tg.evaluate(heldout_text)
                res["heldout"] = {k: float(r[k]) for k in ("loss", "perplexity", "bits_per_char")} | {
                    "tokens": int(r["tokens"]), "chars": int(r["chars"]), "unknown_chars": int(r["unknown_chars"])}
        else:
            res["heldout"] = None
        # temperature sweep
        by_t: list[dict[str, Any]] = []
        samples_t: dict[str, list[str]] = {}
        for t in temps:
            say(f"{m.name}: {samples} samples at temperature {t:g}")
            t0 = time.perf_counter()
            texts = tg.generate(samples, prompt, temperature=t, max_new_tokens=length, seed=seed, include_prompt=False)
            t1 = time.perf_counter()
            metrics = _score(m, texts, index, length)
            score_seconds += time.perf_counter() - t1
            gen_seconds += t1 - t0
            by_t.append({"temperature": t, **metrics})
            samples_t[f"{t:g}"] = texts
        res["by_temperature"] = by_t
        # strategies
        by_s: list[dict[str, Any]] = []
        samples_s: dict[str, list[str]] = {}
        for s in strats:
            desc, opts, many = STRATEGIES[s]
            n = samples if many else 1
            say(f"{m.name}: {desc}")
            t0 = time.perf_counter()
            texts = tg.generate(n, prompt, max_new_tokens=length, seed=seed, include_prompt=False, **opts)
            t1 = time.perf_counter()
            metrics = _score(m, texts, index, length)
            score_seconds += time.perf_counter() - t1
            gen_seconds += t1 - t0
            by_s.append({"strategy": s, "description": desc, **{k: v for k, v in opts.items()}, **metrics})
            samples_s[s] = texts
        res["by_strategy"] = by_s
        res["next_token"] = next_token_distribution(m, plot_temps)
        res["training_log"] = read_training_log(m.path)
        samples_md = m.path / "samples.md" if m.path is not None else None
        res["has_training_samples"] = bool(samples_md and samples_md.is_file())
        results.append(res)
        all_samples[m.name] = {"temperatures": samples_t, "strategies": samples_s}

    # -- write: plots, json, markdown, html ----------------------------------------------------
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    say("drawing plots")
    from ..plotting import configure_matplotlib

    configure_matplotlib()
    images: dict[str, bytes] = {}  # file name → PNG bytes
    logs = {r["name"]: r["training_log"] for r in results if r["training_log"]}
    if logs:
        images["training_curves.png"] = _plot_training(logs, out / "training_curves.png")
    for key in KEY_METRICS:
        series = {}
        for r in results:
            pts = [(row["temperature"], row[key]) for row in r["by_temperature"]
                   if isinstance(row.get(key), float) and math.isfinite(row[key])]
            if pts:
                series[r["name"]] = ([p[0] for p in pts], [p[1] for p in pts])
        if series:
            fname = f"metric_{key}.png"
            images[fname] = _plot_metric(key, series, out / fname)
    for r in results:
        fname = f"next_token_{_safe_name(r['name'])}.png"
        images[fname] = _plot_next_token(r["name"], r["next_token"], out / fname, r["seq2seq"])
        r["next_token"]["plot"] = fname
    plot_seconds = time.perf_counter() - t0

    report: dict[str, Any] = {
        "xuxie_analyze": 1,
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": {"temperatures": temps, "samples": samples, "length": length, "prompt": prompt, "seed": seed,
                     "strategies": strats, "corpus": str(corpus) if corpus is not None else None,
                     "heldout": str(heldout) if heldout is not None else None, "next_token_temperatures": plot_temps},
        "models": results,
        "plots": sorted(images),
        "timing": {"load_seconds": round(load_seconds, 3), "index_seconds": round(index_seconds, 3),
                   "generate_seconds": round(gen_seconds, 3), "score_seconds": round(score_seconds, 3),
                   "plot_seconds": round(plot_seconds, 3)},
    }
    report["timing"]["total_seconds"] = round(time.perf_counter() - started, 3)
    training_samples = {r["name"]: (Path(r["path"]) / "samples.md").read_text(encoding="utf-8", errors="replace")
                        for r in results if r["has_training_samples"]}
    report = _finite(report)
    atomic_write_text(out / "metrics.json", json.dumps(report, ensure_ascii=False, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / "samples.json", json.dumps(all_samples, ensure_ascii=False, indent=1) + "\n")
    atomic_write_text(out / "report.md", render_markdown(report, all_samples, training_samples))
    atomic_write_text(out / "report.html", render_html(report, all_samples, training_samples, images))
    report["files"] = {"report_html": str(out / "report.html"), "report_md": str(out / "report.md"),
                       "metrics_json": str(out / "metrics.json"), "samples_json": str(out / "samples.json"),
                       "plots": [str(out / f) for f in sorted(images)]}
    return report


def _finite(x: Any) -> Any:
    """JSON-ready: numpy scalars become Python numbers, NaN and infinities become None."""
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    return x


# --------------------------------------------------------------------------- rendering helpers


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return "–"
        if v.is_integer() and abs(v) >= 10:
            return f"{int(v):,}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


_ONE_DECIMAL = ("self_bleu", "longest_", "length_", "tokens_")  # metrics in characters, tokens or BLEU points


def _fmt_metric(key: str, v: Any) -> str:
    """A metric with the same decimals all down its column: 1 for lengths and BLEU, else 3."""
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        return "–"
    return f"{v:,.1f}" if key.startswith(_ONE_DECIMAL) else f"{v:.3f}"


def _metric_rows(rows: list[dict[str, Any]], first: str, cols: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    keys = [k for k in cols if any(k in r for r in rows)]
    headers = [first] + [cols[k] for k in keys]
    body = [[f"{r[first]:g}" if first == "temperature" else str(r[first])] + [_fmt_metric(k, r.get(k)) for k in keys] for r in rows]
    return headers, body


def _summary_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    headers = ["model", "arch", "parameters", "mode", "val loss (training)", "corpus"]
    body = []
    for r in report["models"]:
        val = r["training"].get("final_val_loss", r["training"].get("best_val_loss"))
        body.append([r["name"], str(r["arch"]), _fmt(r["parameters"]), r["mode"], _fmt(val), r["corpus"] or "–"])
    return headers, body


def _heldout_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    rows = [r for r in report["models"] if r["heldout"]]
    if not rows:
        return None
    headers = ["model", "loss (nats/token)", "perplexity", "bits per character"]
    return headers, [[r["name"], _fmt(r["heldout"]["loss"]), _fmt(r["heldout"]["perplexity"]), _fmt(r["heldout"]["bits_per_char"])]
                     for r in rows]


METRIC_HELP = [
    ("d-n char / d-n tok", "distinct-n: distinct n-grams ÷ n-gram occurrences, pooled over the samples, in characters or in "
                           "tokens (words; one token per Chinese character). Higher = more varied."),
    ("rep-4", "repetition: the share of a sample's character 4-grams that already occurred earlier in the same sample "
              "(mean over samples). High = the text loops."),
    ("longest repeat", "the longest substring occurring twice inside one sample (characters)."),
    ("self-BLEU", "BLEU-4 of each sample against the other samples (0–100, mean). High = the samples are alike."),
    ("8-grams in corpus", "the share of a sample's character 8-grams that occur verbatim in the training corpus "
                          "(1 − this is the novelty)."),
    ("longest copy", "the longest span of a sample found verbatim in the training corpus (characters)."),
    ("mean log p", "the mean log-probability per token the model gives its own samples (at temperature 1): "
                   "close to 0 = what the model finds most likely; very negative = improbable text."),
]


def _fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _settings_line(report: dict[str, Any]) -> str:
    s = report["settings"]
    return (f"temperatures {', '.join(f'{t:g}' for t in s['temperatures'])}; {s['samples']} samples of {s['length']} tokens "
            f"per temperature; prompt {s['prompt']!r}; seed {s['seed']}; strategies {', '.join(s['strategies']) or 'none'}")


def _examples(texts: list[str]) -> list[str]:
    return texts[:EXAMPLES_PER_TEMPERATURE]


# --------------------------------------------------------------------------- markdown


def render_markdown(report: dict[str, Any], samples: dict[str, Any], training_samples: dict[str, str]) -> str:
    out: list[str] = ["# What the models write (xuxie analyze)\n", f"{report['date']} · {_settings_line(report)}\n"]
    out.append("## Models\n")
    out.append(_md_table(*_summary_rows(report)))
    ho = _heldout_rows(report)
    if ho:
        out.append(f"\n## Held-out text ({report['settings']['heldout']})\n")
        out.append(_md_table(*ho))
    for r in report["models"]:
        for note in r["notes"]:
            out.append(f"\n*{r['name']}: {note}*\n")
    out.append("\n## Metrics against temperature\n")
    for key in KEY_METRICS:
        f = f"metric_{key}.png"
        if f in report["plots"]:
            out.append(f"![{KEY_METRICS[key][1]}]({f})\n")
    for r in report["models"]:
        out.append(f"\n### {r['name']}: temperature sweep\n")
        out.append(_md_table(*_metric_rows(r["by_temperature"], "temperature", TABLE_METRICS)))
        if r["by_strategy"]:
            out.append(f"\n### {r['name']}: decoding strategies\n")
            out.append(_md_table(*_metric_rows(r["by_strategy"], "strategy", TABLE_METRICS)))
    out.append("\nWhat the columns mean:\n")
    out += [f"- **{name}**: {text}" for name, text in METRIC_HELP]
    if "training_curves.png" in report["plots"]:
        out.append("\n## Training curves\n\n![training curves](training_curves.png)\n")
    out.append("\n## How temperature reshapes the next-token distribution\n")
    for r in report["models"]:
        out.append(f"![next token, {r['name']}]({r['next_token']['plot']})\n")
    out.append("\n## Example samples\n")
    for r in report["models"]:
        s = samples[r["name"]]
        out.append(f"\n### {r['name']}\n")
        for t, texts in s["temperatures"].items():
            for i, text in enumerate(_examples(texts), 1):
                fence = _fence(text)
                out.append(f"\n**temperature {t}, sample {i}**\n\n{fence}\n{text}\n{fence}\n")
        for name, texts in s["strategies"].items():
            text = texts[0] if texts else ""
            fence = _fence(text)
            out.append(f"\n**{STRATEGIES[name][0]}**\n\n{fence}\n{text}\n{fence}\n")
    if training_samples:
        out.append("\n## Samples during training (samples.md)\n")
        for name, text in training_samples.items():
            sections, omitted = _pick_sections(_samples_md_sections(text))
            out.append(f"\n### {name}\n")
            if omitted:
                out.append(f"\n*{omitted} of {len(sections) + omitted} evaluations left out; all are in {name}/samples.md*\n")
            for heading, blocks in sections:
                out.append(f"\n#### {heading}\n")
                for label, block in blocks:
                    block = _clip(block)
                    fence = _fence(block)
                    out.append(f"\n**{label}**\n\n{fence}\n{block}\n{fence}\n")
    t = report["timing"]
    out.append(f"\n---\n*analysed in {t['total_seconds']:.1f} s (corpus index {t['index_seconds']:.1f} s, "
               f"generation {t['generate_seconds']:.1f} s, scoring {t['score_seconds']:.1f} s, plots {t['plot_seconds']:.1f} s)*\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- html

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif;
       max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .6em; white-space: pre-wrap; word-break: break-word; font-size: .9em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: .8em; }
figure { margin: .4em 0 .8em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
.note { color: #666; font-style: italic; } .small { font-size: .85em; color: #555; }
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


_NUMBER = re.compile(r"[-+–]?[\d.,]+%?|–")


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if _NUMBER.fullmatch(c) else f"<td>{_e(c)}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def _img(name: str, images: dict[str, bytes], caption: str) -> str:
    data = base64.b64encode(images[name]).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}" data-file="{_e(name)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>\n")


def render_html(report: dict[str, Any], samples: dict[str, Any], training_samples: dict[str, str], images: dict[str, bytes]) -> str:
    h: list[str] = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                    f"<title>xuxie analyze: {_e(', '.join(r['name'] for r in report['models']))}</title>\n"
                    f"<style>{_CSS}</style>\n</head>\n<body>\n"]
    h.append("<h1>What the models write (xuxie analyze)</h1>\n")
    h.append(f'<p class="small">{_e(report["date"])} · {_e(_settings_line(report))}</p>\n')
    h.append("<h2>Models</h2>\n" + _html_table(*_summary_rows(report)))
    ho = _heldout_rows(report)
    if ho:
        h.append(f"<h2>Held-out text ({_e(report['settings']['heldout'])})</h2>\n" + _html_table(*ho))
    for r in report["models"]:
        for note in r["notes"]:
            h.append(f'<p class="note">{_e(r["name"])}: {_e(note)}</p>\n')
    h.append('<h2>Metrics against temperature</h2>\n<div class="plots">\n')
    for key in KEY_METRICS:
        f = f"metric_{key}.png"
        if f in images:
            h.append(_img(f, images, KEY_METRICS[key][1]))
    h.append("</div>\n")
    for r in report["models"]:
        h.append(f"<h3>{_e(r['name'])}: temperature sweep</h3>\n")
        h.append(_html_table(*_metric_rows(r["by_temperature"], "temperature", TABLE_METRICS)))
        if r["by_strategy"]:
            h.append(f"<h3>{_e(r['name'])}: decoding strategies</h3>\n")
            h.append(_html_table(*_metric_rows(r["by_strategy"], "strategy", TABLE_METRICS)))
    h.append("<p>What the columns mean:</p>\n<ul>\n")
    h += [f"<li><b>{_e(name)}</b>: {_e(text)}</li>\n" for name, text in METRIC_HELP]
    h.append("</ul>\n")
    if "training_curves.png" in images:
        h.append("<h2>Training curves</h2>\n" + _img("training_curves.png", images, "train and validation loss against step"))
    h.append("<h2>How temperature reshapes the next-token distribution</h2>\n<div>\n")
    for r in report["models"]:
        h.append(_img(r["next_token"]["plot"], images, f"{r['name']}: the {len(r['next_token']['tokens'])} most likely next tokens"))
    h.append("</div>\n<h2>Example samples</h2>\n")
    for r in report["models"]:
        s = samples[r["name"]]
        h.append(f"<h3>{_e(r['name'])}</h3>\n")
        for t, texts in s["temperatures"].items():
            for i, text in enumerate(_examples(texts), 1):
                h.append(f"<p><b>temperature {_e(t)}, sample {i}</b></p>\n<pre>{_e(text)}</pre>\n")
        for name, texts in s["strategies"].items():
            h.append(f"<p><b>{_e(STRATEGIES[name][0])}</b></p>\n<pre>{_e(texts[0] if texts else '')}</pre>\n")
    if training_samples:
        h.append("<h2>Samples during training (samples.md)</h2>\n")
        for name, text in training_samples.items():
            sections, omitted = _pick_sections(_samples_md_sections(text))
            h.append(f"<h3>{_e(name)}</h3>\n")
            if omitted:
                h.append(f'<p class="note">{omitted} of {len(sections) + omitted} evaluations left out; '
                         f"all are in {_e(name)}/samples.md</p>\n")
            for heading, blocks in sections:
                h.append(f"<h4>{_e(heading)}</h4>\n")
                for label, block in blocks:
                    h.append(f"<p><b>{_e(label)}</b></p>\n<pre>{_e(_clip(block))}</pre>\n")
    t = report["timing"]
    h.append(f'<hr><p class="small">analysed in {t["total_seconds"]:.1f} s (corpus index {t["index_seconds"]:.1f} s, '
             f'generation {t["generate_seconds"]:.1f} s, scoring {t["score_seconds"]:.1f} s, plots {t["plot_seconds"]:.1f} s)</p>\n')
    h.append("</body>\n</html>\n")
    return "".join(h)


__all__ = ["DEFAULT_STRATEGIES", "DEFAULT_TEMPERATURES", "KEY_METRICS", "STRATEGIES", "analyze", "next_token_distribution",
           "parse_strategies", "parse_temperatures", "read_training_log", "render_html", "render_markdown"]
