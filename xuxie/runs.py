"""A training run, from :meth:`TextGenerator.train <xuxie.api.TextGenerator.train>`'s options to
what the :class:`~xuxie.training.Trainer` needs, in named steps: a new run (:func:`new_run`) or a
resumed one (:func:`resumed_run`), its corpus encoded (:func:`encode`), and its callbacks.

Model and training defaults are not decided here: each model family declares them beside its
config (``xuxie/models/``; :class:`~xuxie.models.ModelConfig`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint as ckpt
from .cache import cached_ids, cached_tokenizer, streamed_corpus, streamed_table
from .callbacks import Callback, default_callbacks
from .corpus import PAIR_SUFFIXES, Corpus, continuation_pairs, corpus_from_text, read_corpus
from .corpus.sources import expand_paths
from .corpus.stream import StreamedCorpus
from .data import Labelling, PairData, check_window, encode_corpus, encode_pairs
from .errors import XuxieError, XuxieWarning
from .models import LanguageModel, build_model, is_encoder_decoder
from .models.base import train_defaults
from .progress import NO_PROGRESS, PassProgress
from .tokenizers import Tokenizer, train_tokenizer
from .training import TrainConfig, autocast_dtype

PAIR_MODES = ("pairs", "continuation")


def resolve_mode(arch: str, mode: str | None, sources: Sequence[Any]) -> str:
    """The corpus mode: as given (checked against the architecture), else ``text`` for language
    models and, for seq2seq, ``pairs`` for .tsv/.jsonl files and ``continuation`` otherwise."""
    if is_encoder_decoder(arch):
        if mode is None:
            if isinstance(sources, Corpus):
                return "pairs" if sources.mode == "pairs" else "continuation"
            paths = [str(s) for s in sources]
            return "pairs" if paths and all(p.lower().endswith(PAIR_SUFFIXES) for p in paths) else "continuation"
        if mode not in PAIR_MODES:
            raise XuxieError(f"a seq2seq model learns source→target pairs, not --mode {mode}: use --mode pairs (a .tsv/.jsonl file) "
                             "or --mode continuation (a plain text: each paragraph → the next)")
        return mode
    if mode in PAIR_MODES:
        raise XuxieError(f"--mode {mode} makes source→target pairs, which only an encoder–decoder learns: add --arch seq2seq "
                         "(language models train on --mode text or lines)")
    return mode or "text"


# --------------------------------------------------------------------------- the corpus
# A one-line string naming a text file is a path even when it does not exist (a clear error, not
# a model trained on the file name).
_PATHLIKE = re.compile(r"\S+\.(?:txt|md|text|csv|tsv|json|jsonl)|\S*[/\\]", re.IGNORECASE)


def _looks_like_path(s: str) -> bool:
    return len(s) < 4096 and "\n" not in s


def corpus_files(source: Any) -> list[Path]:
    """The existing files and folders named by a training source (not a text string or a Corpus)."""
    if isinstance(source, Corpus):
        return []
    names = source if isinstance(source, (list, tuple)) else [source]
    found = []
    for name in names:
        try:
            if (isinstance(name, Path) or _looks_like_path(str(name))) and Path(name).exists():
                found.append(Path(name))
        except OSError:  # a text string too long to be a file name
            pass
    return found


def read_source(source: Any, mode: str, encoding: str | None, unit: str = "paragraph", sentences: int = 3,
                exclude: Sequence[Path] = (), progress: PassProgress = NO_PROGRESS) -> Corpus | StreamedCorpus:
    """The corpus a training source names; a folder is read without ``exclude`` (the run's own
    output). Files of text or lines are streamed (:mod:`xuxie.cache`): never held whole."""
    if isinstance(source, Corpus):
        if mode == "continuation" and source.mode != "pairs":
            return continuation_pairs(source, unit, sentences)
        return source

    def read_files(paths: str | list) -> Corpus | StreamedCorpus:
        if mode in ("text", "lines"):
            return streamed_corpus(expand_paths(paths, exclude), mode, encoding, progress)
        return read_corpus(paths, mode, encoding, unit=unit, sentences=sentences, exclude=exclude)

    if isinstance(source, (list, tuple)):
        return read_files(list(source))
    if isinstance(source, Path) or _looks_like_path(str(source)):
        s = str(source)
        from .corpus import NAMED_CORPORA

        if Path(s).exists() or s in NAMED_CORPORA or isinstance(source, Path) or _PATHLIKE.fullmatch(s):
            return read_files(s)
    if mode == "continuation":
        return continuation_pairs(corpus_from_text(str(source), "text"), unit, sentences)
    return corpus_from_text(str(source), mode)


@dataclass
class CorpusRequest:
    """What to read and how: a source (file, folder, named corpus, list of those, text, or a
    :class:`Corpus`), its mode, and the options of continuation pairs and labelled tables."""

    source: Any
    mode: str | None = None
    encoding: str | None = None
    unit: str = "paragraph"
    sentences: int = 3
    label_column: str | None = None
    text_column: str = "text"
    progress: PassProgress = NO_PROGRESS  # bars for the passes over a large corpus

    def read(self, exclude: Sequence[Path]) -> Corpus | StreamedCorpus:
        if self.label_column is not None:
            sources = self.source if isinstance(self.source, (list, tuple)) else [self.source]
            return streamed_table(expand_paths(sources, exclude), self.text_column, self.label_column, self.encoding, self.progress)
        return read_source(self.source, self.mode, self.encoding, self.unit, self.sentences, exclude, self.progress)

    def as_saved(self, saved: dict[str, Any]) -> CorpusRequest:
        """This source read as the run in a model directory's ``saved`` config read its own: a
        continuation model's plain texts paired again, a labelled table by the same columns."""
        c = saved.get("corpus", {})
        return replace(self, mode="continuation" if c.get("unit") else saved["mode"], unit=c.get("unit", self.unit),
                       sentences=c.get("sentences", self.sentences), label_column=c.get("label_column") or None,
                       text_column=c.get("text_column", "text"))


def warn_if_corpus_changed(out_dir: Path, saved: dict[str, Any], corpus: Corpus) -> None:
    """--resume on a corpus that is not the one the run began with: say so, naming the files that
    changed, and go on (the run's tokenizer reads new characters as unknown)."""
    if not saved.get("sha256") or saved["sha256"] == corpus.fingerprint():
        return
    before = dict(zip(saved.get("sources", []), saved.get("source_sha256", [])))
    now = dict(zip(corpus.sources, corpus.source_hashes))
    changed = [f"{name} ({'changed' if name in before else 'new'})" for name, digest in now.items() if before.get(name) != digest]
    changed += [f"{name} (gone)" for name in before if name not in now]
    detail = ", ".join(changed[:3]) + (" …" if len(changed) > 3 else "") if before else "its text differs"
    warnings.warn(f"the corpus is not the one {out_dir} was started on: {detail}; "
                  "training continues on it with the run's tokenizer", XuxieWarning, stacklevel=3)


# --------------------------------------------------------------------------- a new or resumed run
@dataclass
class TokenizerOptions:
    kind: str = "char"
    min_freq: int = 1
    max_vocab: int = 20000
    vocab_size: int | None = None

    def train(self, corpus: Corpus | StreamedCorpus, val_fraction: float, progress: PassProgress = NO_PROGRESS) -> Tokenizer:
        """A tokenizer learnt from what a model reads of the training part of ``corpus`` (targets
        too); for a streamed corpus, learnt once and then read from the cache."""
        options = {"kind": self.kind, "min_freq": self.min_freq, "max_vocab": self.max_vocab, "vocab_size": self.vocab_size}
        if isinstance(corpus, StreamedCorpus):
            return cached_tokenizer(corpus, options, val_fraction, progress)
        train_part = corpus.split(val_fraction)[0]
        return train_tokenizer(texts=train_part.documents + (train_part.targets or []), **options)


@dataclass
class Run:
    """A training run before its loop: what it trains, on what, with which settings."""

    arch: str
    corpus: Corpus
    tokenizer: Tokenizer
    model: LanguageModel
    train: TrainConfig
    info: dict[str, Any]  # config.json's description of the run (without its settings and results)
    resumed: bool = False


def new_run(arch: str, request: CorpusRequest, tokenizer: TokenizerOptions, model_options: dict[str, Any] | None,
            given: dict[str, Any], budget: dict[str, Any], device: torch.device, exclude: Sequence[Path]) -> Run:
    """A run from scratch: the mode resolved, the settings checked before the corpus is read,
    then the corpus, a tokenizer learnt from its training part, and a freshly initialised model.
    ``given``: the training settings the user gave; the architecture's own defaults fill the rest."""
    sources = request.source if isinstance(request.source, (list, tuple, Corpus)) else [request.source]
    request = replace(request, mode=resolve_mode(arch, request.mode, sources))
    train = TrainConfig(**{**train_defaults(arch), **given}, **budget).validate()
    autocast_dtype(train.precision, device)  # bf16 where it is slow: said before anything is read or written
    corpus = request.read(exclude)
    tok = tokenizer.train(corpus, train.val_fraction, request.progress)
    torch.manual_seed(train.seed)  # reproducible initialisation
    labels = corpus.label_names
    # Context labels are extra input tokens after the tokenizer's own (never generated).
    options = {k: v for k, v in (model_options or {}).items() if v is not None}
    model = build_model(arch, tok.vocab_size + len(labels), **options).to(device)
    return Run(arch, corpus, tok, model, train, _run_info(arch, model, tok, corpus, request, labels))


def _run_info(arch: str, model: LanguageModel, tok: Tokenizer, corpus: Corpus, request: CorpusRequest, labels: list[str]) -> dict[str, Any]:
    from .api import __version__

    info = {
        "arch": arch, "model": model.config.__dict__, "tokenizer": tok.kind, "mode": corpus.mode,
        "corpus": {"sources": list(corpus.sources), "source_sha256": list(corpus.source_hashes), "encodings": list(corpus.encodings),
                   "documents": corpus.n_documents, "chars": corpus.n_chars, "sha256": corpus.fingerprint()},
        "parameters": model.num_parameters(), "xuxie_version": __version__,
    }
    if corpus.mode == "pairs":
        info["corpus"]["pairs_from"] = corpus.pairs_from
        if request.mode == "continuation":
            info["corpus"].update(unit=request.unit, sentences=request.sentences)
    if labels:
        info["labels"] = labels
        info["corpus"]["label_column"] = request.label_column
        info["corpus"]["text_column"] = request.text_column
    return info


def resumed_run(out_dir: Path, request: CorpusRequest, given: dict[str, Any], budget: dict[str, Any], device: torch.device) -> Run:
    """The run in ``out_dir`` as it was saved: its tokenizer, settings (``given`` ones replace
    them; a budget given replaces the whole budget) and model, on its corpus read again."""
    saved = ckpt.read_config(out_dir)
    tok = ckpt.load_tokenizer(out_dir / ckpt.TOKENIZER)
    train = TrainConfig.from_dict({**saved.get("train", {}), **given})
    if any(v is not None for v in budget.values()):
        train.epochs, train.steps, train.time_minutes = budget["epochs"], budget["steps"], budget["time_minutes"]
    autocast_dtype(train.precision, device)
    corpus = request.as_saved(saved).read(exclude=[out_dir])
    warn_if_corpus_changed(out_dir, saved.get("corpus", {}), corpus)
    torch.manual_seed(train.seed)  # a run killed before its first checkpoint starts as it began
    model = ckpt.model_from_config(saved["arch"], saved["model"]).to(device)
    info = {k: v for k, v in saved.items() if k not in ("format", "version", "train", "results")}
    return Run(saved["arch"], corpus, tok, model, train, info, resumed=True)


# --------------------------------------------------------------------------- encoding
@dataclass
class Encoded:
    """A run's corpus as token ids (or :class:`~xuxie.data.PairData` for pairs), split."""

    train: np.ndarray | PairData
    val: np.ndarray | PairData | None
    val_chars: int  # characters of what validation scores, for bits per character


def encode(run: Run, given: dict[str, Any], progress: PassProgress = NO_PROGRESS) -> Encoded:
    """The run's corpus split and encoded. A new run's architecture then settles the training
    settings that follow from its model and data (the window, the precision, pairs per batch)."""
    corpus = run.corpus
    if (corpus.mode == "pairs") != is_encoder_decoder(run.arch):
        raise XuxieError(f"architecture '{run.arch}' cannot train on a {corpus.mode} corpus; " +
                         ("use --arch seq2seq for source→target "
                          "pairs" if corpus.mode == "pairs" else "seq2seq needs --mode pairs or continuation"))
    if isinstance(corpus, StreamedCorpus):
        train_ids, val_ids, val_chars = cached_ids(corpus, run.tokenizer, run.train.val_fraction, run_labelling(run), progress)
        data = Encoded(train_ids, val_ids if len(val_ids) else None, val_chars)
    else:
        train_part, val_part = corpus.split(run.train.val_fraction)
        data = _encode_pairs(run, train_part, val_part) if corpus.mode == "pairs" else _encode_text(run, train_part, val_part)
    if not run.resumed:
        run.model.config.adjust_train_config(run.train, given, data.train)
        if corpus.mode != "pairs":
            run.model.learn_token_frequencies(data.train)
    if corpus.mode != "pairs":
        check_window(len(data.train), run.train.seq_len)
    return data


def run_labelling(run: Run) -> Labelling | None:
    """How the run's context labels go into its ids: each an input token after the tokenizer's
    own; 10% of labelled training documents go without theirs, so unlabelled generation works."""
    labels = run.info.get("labels", [])
    if not labels:
        return None
    return Labelling({lab: run.tokenizer.vocab_size + i for i, lab in enumerate(labels)}, dropout=0.1, seed=run.train.seed)


def _encode_pairs(run: Run, train_part: Corpus, val_part: Corpus) -> Encoded:
    cfg = run.model.config
    train = encode_pairs(train_part, run.tokenizer, cfg.max_source_len, cfg.max_target_len)
    val = encode_pairs(val_part, run.tokenizer, cfg.max_source_len, cfg.max_target_len) if val_part.documents else None
    return Encoded(train, val, val.target_chars if val is not None else 0)


def _encode_text(run: Run, train_part: Corpus, val_part: Corpus) -> Encoded:
    tok = run.tokenizer
    labelling = run_labelling(run)
    train = encode_corpus(train_part, tok, labelling)
    val = encode_corpus(val_part, tok, labelling and replace(labelling, dropout=0.0)) if val_part.documents else None
    val_chars = sum(len(d) + (1 if run.corpus.mode == "lines" else 0) for d in val_part.documents)
    return Encoded(train, val, val_chars)


def training_callbacks(callbacks: Sequence[Callback] | None, config: TrainConfig, console=None, progress: bool = True) -> list[Callback]:
    """The user's callbacks, else the defaults (a progress bar on stderr when ``progress``)."""
    if console is None and progress:
        from rich.console import Console

        console = Console(stderr=True)
    return list(callbacks) if callbacks is not None else default_callbacks(config, console, progress)
