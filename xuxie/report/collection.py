"""What an analysis reads: the models (named, with their prompt ids), the corpus each was trained on
(indexed once per distinct corpus), the held-out text, and each model's training log and samples.md."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import analysis
from ..corpus import PAIR_SUFFIXES, read_corpus, read_labelled, read_pairs, read_text_file
from ..errors import XuxieError
from ..fileio import LOG
from .settings import Progress


@dataclass
class ModelRun:
    """One model under analysis: its unique name, what it starts writing from, its training corpus."""

    name: str
    tg: Any  # TextGenerator
    path: Path | None
    prompt_ids: list[int] = field(default_factory=list)
    suppress: list[int] = field(default_factory=list)
    corpus_key: tuple | None = None
    corpus_label: str | None = None
    corpus_note: str | None = None


# --------------------------------------------------------------------------- models
def load_models(models: Sequence[Any], device: str | None) -> list[ModelRun]:
    """Model directories (or loaded TextGenerators) as runs named after their folders, in eval mode."""
    from ..api import TextGenerator

    if isinstance(models, (str, Path)) or isinstance(models, TextGenerator):
        models = [models]
    models = list(models)
    if not models:
        raise XuxieError("give at least one model directory to analyse")
    loaded: list[ModelRun] = []
    for m in models:
        if isinstance(m, TextGenerator):
            loaded.append(ModelRun("", m, m.path))
        elif isinstance(m, (str, Path)):
            loaded.append(ModelRun("", TextGenerator.load(m, device), Path(m)))
        else:
            raise XuxieError(f"a model must be a model directory or a TextGenerator, got {type(m).__name__}")
    _name_uniquely(loaded)
    for m in loaded:
        m.tg.model.eval()
    return loaded


def _name_uniquely(runs: list[ModelRun]) -> None:
    """Each run's name: its directory name, with ``-2``, ``-3``… when two directories share one."""
    seen: dict[str, int] = {}
    for i, m in enumerate(runs, 1):
        base = (m.path.resolve().name if m.path is not None else "") or f"model{i}"
        k = seen.get(base, 0)
        seen[base] = k + 1
        m.name = base if k == 0 else f"{base}-{k + 1}"


def prepare_prompts(runs: list[ModelRun], prompt: str) -> None:
    """Each model's prompt ids and suppressed ids (a seq2seq model needs a prompt: it answers one)."""
    for m in runs:
        tg = m.tg
        if tg.is_seq2seq and not prompt.strip():
            raise XuxieError(f"{m.name} is a seq2seq model, which answers an input: give one with --prompt")
        m.prompt_ids = tg.decoding.prompt_ids(prompt)
        m.suppress = list(tg.decoding.suppress)


# --------------------------------------------------------------------------- corpora
def attach_corpora(runs: list[ModelRun], corpus: str | Path | None) -> dict[tuple, str]:
    """Set each run's training corpus — ``corpus`` when given, else what its config.json records —
    and return the texts already read, by corpus key."""
    if corpus is None:
        for m in runs:
            m.corpus_key, m.corpus_label, m.corpus_note = _corpus_from_config(m.tg.config)
        return {}
    key = _corpus_key_for_path(corpus)
    c = read_pairs([corpus]) if key[0] == "pairs" else read_corpus(corpus, "text")
    label = ", ".join(c.sources) or str(corpus)
    for m in runs:
        m.corpus_key, m.corpus_label = key, label
    return {key: c.text}


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
    kind, sources = key[0], list(key[1])
    if kind == "labelled":
        return read_labelled(sources, key[2], key[3]).text
    if kind == "pairs":
        return read_pairs(sources).text
    return read_corpus(sources, kind).text


def _corpus_key_for_path(path: str | Path) -> tuple:
    return ("pairs" if str(path).lower().endswith(PAIR_SUFFIXES) else "text", (str(path),))


def build_indexes(runs: list[ModelRun], texts_by_key: dict[tuple, str], say: Progress) -> dict[tuple, analysis.CorpusIndex]:
    """One :class:`~xuxie.analysis.CorpusIndex` per distinct training corpus (read now unless in ``texts_by_key``)."""
    indexes: dict[tuple, analysis.CorpusIndex] = {}
    for m in runs:
        if m.corpus_key is None or m.corpus_key in indexes:
            continue
        say(f"indexing the training corpus {m.corpus_label}")
        text = texts_by_key.get(m.corpus_key)
        if text is None:
            text = _read_corpus_text(m.corpus_key)
        indexes[m.corpus_key] = analysis.CorpusIndex(text)
    return indexes


def read_heldout(heldout: str | Path | None) -> str | None:
    """The held-out text to score, or None when none was given."""
    if heldout is None:
        return None
    text, _ = read_text_file(Path(heldout))
    if not text.strip():
        raise XuxieError(f"held-out file {heldout} is empty; give a file with text in it")
    return text


# --------------------------------------------------------------------------- the training run's own files
def read_training_log(path: Path | None) -> dict[str, list[float]] | None:
    """Training-loss and validation-loss points (step, loss) from a model's log.jsonl: the
    training loss is the trainer's moving average (``loss_avg`` of the ``train`` records every
    ``log_every`` steps, and ``train_loss`` of each ``eval`` record), the validation loss that of
    each ``eval`` record. ``None`` when there is no log."""
    if path is None or not (path / LOG).is_file():
        return None
    train_steps, train_loss, val_steps, val_loss = [], [], [], []
    for rec in _log_records(path / LOG):
        ev = rec.get("event")
        if ev == "train" and isinstance(rec.get("loss_avg", rec.get("loss")), (int, float)):
            train_steps.append(float(rec["step"]))
            train_loss.append(float(rec.get("loss_avg", rec.get("loss"))))
        elif ev == "eval":
            if _finite_number(rec.get("train_loss")):
                train_steps.append(float(rec["step"]))
                train_loss.append(float(rec["train_loss"]))
            if _finite_number(rec.get("val_loss")):
                val_steps.append(float(rec["step"]))
                val_loss.append(float(rec["val_loss"]))
    if not train_steps and not val_steps:
        return None
    order = sorted(range(len(train_steps)), key=lambda i: train_steps[i])  # eval records fall between train records
    train_steps, train_loss = [train_steps[i] for i in order], [train_loss[i] for i in order]
    return {"train_step": train_steps, "train_loss": train_loss, "val_step": val_steps, "val_loss": val_loss}


def _log_records(path: Path) -> list[dict[str, Any]]:
    """The records of a log.jsonl that have a numeric step."""
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line after an interruption
        if isinstance(rec, dict) and isinstance(rec.get("step"), (int, float)):
            records.append(rec)
    return records


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def samples_md_sections(text: str) -> list[tuple[str, list[tuple[str, str]]]]:
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
