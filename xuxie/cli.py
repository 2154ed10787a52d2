"""The ``xuxie`` command line: parsing and printing only; the work lives in the modules."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .decoding import GenerationConfig
from .defaults import model_default, show, train_default
from .errors import XuxieError, XuxieWarning, check_numbers
from .models.base import default_config
from .models.seq2seq import ATTENTIONS, CELLS
from .models.transformer import DEFAULT_PRESET, POSITIONS, PRESETS
from .server.limits import ServerLimits
from .threads import requested_threads_set, threads_scope
from .training import OPTIMIZERS, SCHEDULES, TrainConfig

app = typer.Typer(
    name="xuxie",
    help="xuxie (续写): train text generators on your own corpus, then continue and write text with them.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
_show_warning = warnings.showwarning
_warned: set[str] = set()


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """xuxie's warnings as one plain line on stderr, each once a run (Python's own once-only record
    is cleared whenever a library uses ``warnings.catch_warnings``, so the same input read twice —
    to answer it, then to plot attention — would warn twice); others as Python shows them."""
    if issubclass(category, XuxieWarning):
        text = " ".join(str(message).split())
        if text not in _warned:
            _warned.add(text)
            err.print(f"[yellow]warning:[/] {escape(text)}", soft_wrap=True)
    else:
        _show_warning(message, category, filename, lineno, file, line)


warnings.showwarning = _warning_line


THREADS_OPTION = inspect.Parameter(
    "threads", inspect.Parameter.KEYWORD_ONLY, default=None,
    annotation=Annotated[int | None, typer.Option(
        "--threads", min=1, show_default=False,
        help="CPU threads for this command (also XUXIE_THREADS). Default: all cores for train and evaluate; "
             "1 for decoding fewer than 8 sequences at once (faster beside other jobs, as fast alone), all cores from 8.")],
)


def _discard_stdout() -> None:
    """The reader of our output went away (``xuxie generate … | head -1``): what is still buffered
    goes nowhere, so Python's last flush at exit has no broken pipe to report; the exit is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _command(workload: str) -> Callable[[Callable], Callable]:
    """Every command: ``--threads`` (declared once, here) and its workload's thread default; one
    clear line and exit code 2 for user errors; 128 + the signal after Ctrl-C/SIGTERM/SIGHUP (checkpoint saved)."""

    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, threads: int | None = None, **kwargs: Any) -> Any:
            from .training import TrainingInterrupted

            try:
                check_numbers(kwargs, flag=lambda name: "--" + name.replace("_", "-"))
                with requested_threads_set(threads), threads_scope(workload):
                    result = fn(*args, **kwargs)
                sys.stdout.flush()  # a reader that went away (| head) is noticed here, not at interpreter exit
                return result
            except XuxieError as e:
                err.print(f"[bold red]error:[/] {escape(' '.join(str(e).split()))}", soft_wrap=True)
                raise typer.Exit(2) from None
            except TrainingInterrupted as e:
                err.print(f"[yellow]{escape(str(e))}[/]", soft_wrap=True)
                raise typer.Exit(e.exit_code) from None
            except KeyboardInterrupt:
                err.print("[yellow]interrupted[/]")
                raise typer.Exit(130) from None
            except BrokenPipeError:
                _discard_stdout()
                raise typer.Exit(0) from None

        signature = inspect.signature(fn, eval_str=True)
        signature = signature.replace(parameters=[*signature.parameters.values(), THREADS_OPTION])
        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return wrapper

    return decorate


# --------------------------------------------------------------------------- train
TRAIN_HELP = """Train a model on a corpus: a file, several files, a folder, or a named corpus
(`tinyshakespeare`, `hongloumeng`).

Examples:

    xuxie train tinyshakespeare --out runs/shakespeare --time 3

    xuxie train ../shared/corpora/hongloumeng.txt --out runs/hlm --time 5

    xuxie train headlines.txt --mode lines --out runs/hn --epochs 10

    xuxie train novel.txt --tokenizer word --arch gru --hidden-size 256 --steps 2000

    xuxie train --out runs/hlm --resume --time 10      # continue an interrupted or finished run

    xuxie train hongloumeng --arch seq2seq --out runs/hlm-s2s --time 10   # each paragraph → the next

    xuxie train posts.tsv --arch seq2seq --out runs/replies               # source<TAB>target lines

Writes the model directory (config.json, tokenizer.json, model.safetensors, checkpoints/,
log.jsonl, samples.md). Ctrl-C, SIGTERM and SIGHUP save a checkpoint; --resume continues from the
newest whole one (a run killed at any instant loses at most --save-every minutes). --overwrite
replaces only a model xuxie wrote, and only xuxie's files in it.
"""


# Each family's model flags: a train parameter → the field of the family's config it sets (lstm,
# gru and rnn: _RNN_FLAGS). Defaults in the help are read from the families' configs (xuxie/defaults.py).
_RNN_FLAGS = {"hidden_size": "hidden_size", "layers": "num_layers", "embed_dim": "embed_dim", "dropout": "dropout",
              "tie_weights": "tie_weights", "softmax_cutoffs": "softmax_cutoffs"}
_FAMILY_FLAGS = {
    "attention-rnn": {"hidden_size": "hidden_size", "layers": "num_layers", "embed_dim": "embed_dim", "window": "window",
                      "dropout": "dropout", "bidirectional": "bidirectional"},
    "transformer": {"preset": "preset", "layers": "n_layer", "heads": "n_head", "hidden_size": "n_embd", "context": "context",
                    "positions": "positions", "dropout": "dropout"},
    "seq2seq": {"hidden_size": "hidden_size", "layers": "num_layers", "embed_dim": "embed_dim", "dropout": "dropout",
                "bidirectional": "bidirectional", "cell": "cell", "attention": "attention", "input_feeding": "input_feeding",
                "teacher_forcing": "teacher_forcing", "max_source_len": "max_source_len", "max_target_len": "max_target_len"},
}
_SEQ2SEQ_ONLY = ("cell", "attention", "input_feeding", "teacher_forcing", "max_source_len", "max_target_len")
#: flags of other families an architecture refuses, and what it says (None: lstm, gru, rnn)
_REFUSED: dict[str | None, list[tuple[tuple[str, ...], str]]] = {
    "transformer": [(("embed_dim",), "--embed-dim is for RNNs; a transformer's embedding is its width (--hidden-size)"),
                    (("softmax_cutoffs",), "--softmax-cutoffs is for --arch lstm, gru and rnn")],
    "seq2seq": [(("preset", "heads", "context", "positions", "window", "tie_weights", "softmax_cutoffs"),
                 "--preset, --heads, --context, --positions, --window, --tie-weights and --softmax-cutoffs do not apply to seq2seq")],
    "attention-rnn": [(("preset", "heads", "context", "positions", "tie_weights", "softmax_cutoffs"),
                       "--preset, --heads, --context, --positions, --tie-weights and --softmax-cutoffs do not apply to attention-rnn")],
    None: [(("window", "bidirectional"), "--window and --bidirectional are attention-rnn/seq2seq options; add --arch attention-rnn or "
                                         "--arch seq2seq"),
           (("preset", "heads", "context", "positions"), "--preset, --heads, --context and --positions are transformer options; add "
                                                         "--arch transformer")],
}
#: the train command's training flags → TrainConfig fields
_TRAIN_FLAGS = {"seq_len": "seq_len", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr", "schedule": "schedule",
                "min_lr_ratio": "min_lr_ratio",
                "optimizer": "optimizer", "muon_lr": "muon_lr", "weight_decay": "weight_decay",
                "warmup": "warmup_steps", "patience": "patience", "val_fraction": "val_fraction", "eval_interval": "eval_interval",
                "save_every": "save_minutes", "precision": "precision", "seed": "seed", "preview_length": "preview_length"}


def _model_options(arch: str, params: dict[str, Any]) -> dict[str, Any]:
    """The model options ``arch`` takes from the train command's ``params`` (``None``: not given),
    named as its config names them; a flag of another family is an error."""
    flags = {**params, "tie_weights": params["tie_weights"] or None,  # a switch: given only when on
             "softmax_cutoffs": _cutoffs(params["softmax_cutoffs"])}
    seq2seq_only = [name for name in _SEQ2SEQ_ONLY if flags[name] is not None]
    if arch != "seq2seq" and seq2seq_only:
        raise XuxieError(f"{', '.join('--' + name.replace('_', '-') for name in seq2seq_only)}: seq2seq options; add --arch seq2seq")
    for names, message in _REFUSED.get(arch, _REFUSED[None]):
        if any(flags[name] is not None for name in names):
            raise XuxieError(message)
    return {field: flags[flag] for flag, field in _FAMILY_FLAGS.get(arch, _RNN_FLAGS).items()}


def _cutoffs(value: str | None) -> list[int] | None:
    """``--softmax-cutoffs``: ``full`` → [], ``auto`` → None (chosen from the vocabulary), ``2000,8000`` → [2000, 8000]."""
    if value is None or value.strip().lower() == "auto":
        return None
    if value.strip().lower() == "full":
        return []
    try:
        return [int(part) for part in value.split(",")]
    except ValueError:
        raise XuxieError(f"--softmax-cutoffs takes 'auto', 'full' or increasing token counts like 2000,8000; got {value!r}") from None


def _model_help(flag: str, unset: str = "") -> str:
    """The default of a model flag in each architecture that takes it, from the families' configs."""
    return model_default(lambda arch: _FAMILY_FLAGS.get(arch, _RNN_FLAGS).get(flag), unset)


def _choices(options: Sequence[str], default: str, notes: dict[str, str] | None = None) -> str:
    """``"general (Luong, default), dot (Luong) or additive (Bahdanau)"``."""
    notes = notes or {}
    shown = [f"{o} ({', '.join(n for n in (notes.get(o), 'default' if o == default else None) if n)})"
             if o == default or o in notes else o for o in options]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _train_corpus(corpus: list[str] | None, out_dir: Path | None, resume: bool) -> tuple[list[str], Path]:
    """What to train on and where: as given; for --resume without a corpus, the one the run
    recorded. --out defaults to runs/<corpus name>."""
    from . import checkpoint as ckpt

    if not corpus:
        if not (resume and out_dir is not None):
            raise XuxieError("give a corpus to train on (a file, folder, or 'tinyshakespeare'/'hongloumeng'), or --out DIR --resume")
        corpus = ckpt.read_config(out_dir).get("corpus", {}).get("sources") or []
        if not corpus:
            raise XuxieError(f"{out_dir} does not record its corpus; give it again: xuxie train CORPUS --out {out_dir} --resume")
    return corpus, out_dir if out_dir is not None else Path("runs") / Path(corpus[0]).stem


def _launch_torchrun(nproc: int, out_dir: Path, resume: bool, overwrite: bool, corpus: list[str]) -> int:
    """``xuxie train … --nproc N``: the same command under PyTorch's own launcher (``torchrun
    --standalone``) with N processes; returns the exit code. The output folder is checked here
    first, so that a folder in the way is one line rather than N failed processes, and a process
    that fails leaves its own one-line message, not the launcher's report."""
    import logging

    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    from . import checkpoint as ckpt
    from .runs import corpus_files
    from .threads import available_cores

    if sys.argv[1:2] != ["train"]:
        raise XuxieError("--nproc works from the command line (xuxie train … --nproc N); from Python, start torchrun yourself")
    if not resume:
        ckpt.check_out_dir(out_dir, overwrite, corpus_files(corpus))
    args = sys.argv[1:]
    for i, a in enumerate(args):
        if a == "--nproc":
            del args[i:i + 2]
            break
        if a.startswith("--nproc="):
            del args[i]
            break
    # torchrun would set OMP_NUM_THREADS=1 with a banner; xuxie sets each process's threads itself
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # the failed process has said why
    launcher = ["--standalone", f"--nproc-per-node={nproc}", "-m", "xuxie", *args]
    err.print(f"[bold]xuxie train[/] in {nproc} processes: torchrun {escape(' '.join(launcher))}", soft_wrap=True)
    try:
        run(parse_args(launcher))
    except ChildFailedError as e:
        codes = [f.exitcode for f in e.failures.values()]
        return next((c for c in codes if c == 2), codes[0] if codes else 1)
    except SignalException as e:  # Ctrl-C or SIGTERM: the processes got it too and saved their checkpoint
        return 128 + int(e.sigval)
    return 0


def _print_trained(tg: Any, out_dir: Path) -> None:
    r = tg.config.get("results", {})
    table = Table(title=f"trained {tg.config['arch']} ({tg.model.num_parameters():,} parameters)", show_header=False)
    for key in ("steps", "tokens", "seconds", "tokens_per_s", "precision", "final_val_loss", "final_val_loss_stderr",
                "final_val_tokens", "final_val_ppl", "final_val_bpc", "best_val_loss", "best_step"):
        if r.get(key) is not None:
            table.add_row(key.replace("_", " "), f"{r[key]:,}" if isinstance(r[key], int) else str(r[key]))
    err.print(table)
    if tg.is_seq2seq:
        err.print(f"continue a text with: xuxie continue {escape(str(out_dir))} --text \"…\"  (or --input FILE)")
    else:
        err.print(f"generate with: xuxie generate {escape(str(out_dir))} --prompt \"…\"")


_S2S = default_config("seq2seq")
_ATTENTION_RNN = default_config("attention-rnn")


@app.command(help=TRAIN_HELP)
@_command("train")
def train(
    corpus: Annotated[list[str] | None, typer.Argument(
        help="File(s), folder(s) or a named corpus. Optional with --resume.", show_default=False)] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", "-o", help="Model directory to write (default: runs/<corpus name>).")] = None,
    arch: Annotated[str, typer.Option(
        help="Architecture: lstm, gru, rnn, attention-rnn (textgenrnn), transformer, or seq2seq (encoder–decoder with "
             "attention).")] = "lstm",
    tokenizer: Annotated[str, typer.Option(help="Tokenizer: char, word (jieba for Chinese) or bpe (byte-level subwords).")] = "char",
    mode: Annotated[str | None, typer.Option(
        help="text: one continuous text (default); lines: every line is a document; seq2seq: pairs (source<TAB>target .tsv or .jsonl) or "
             "continuation (plain text, each unit → the next; default for non-.tsv/.jsonl files).")] = None,
    unit: Annotated[str, typer.Option(help="--mode continuation: paragraph, or sentences (see --sentences).")] = "paragraph",
    sentences: Annotated[int, typer.Option(help="--mode continuation --unit sentences: sentences per unit.")] = 3,
    encoding: Annotated[str | None, typer.Option(help="Force the file encoding (detected by default).")] = None,
    label_column: Annotated[str | None, typer.Option(help="CSV/TSV/JSONL corpus: the column with each row's context label.")] = None,
    text_column: Annotated[str, typer.Option(help="CSV/TSV/JSONL corpus: the column with the text.")] = "text",
    epochs: Annotated[float | None, typer.Option(help="Budget in passes over the training text.")] = None,
    steps: Annotated[int | None, typer.Option(help="Budget in optimiser steps.")] = None,
    time: Annotated[float | None, typer.Option("--time", help="Budget in minutes (default 5 when no budget is given).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out (budgets are totals for the whole run).")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a xuxie model in --out (only its own files; a folder xuxie did not write is never "
                            "replaced).")] = False,
    hidden_size: Annotated[int | None, typer.Option(
        help=f"Recurrent units per layer; transformer: the width ({_model_help('hidden_size')}).")] = None,
    layers: Annotated[int | None, typer.Option(help=f"Layers ({_model_help('layers')}).")] = None,
    preset: Annotated[str | None, typer.Option(
        help=f"Transformer size: {_choices(PRESETS, DEFAULT_PRESET)}; it sets the layers, heads, width and context not given.")] = None,
    heads: Annotated[int | None, typer.Option(help=f"Transformer attention heads ({_model_help('heads')}).")] = None,
    context: Annotated[int | None, typer.Option(
        help=f"Transformer context (attention window) in tokens ({_model_help('context')}).")] = None,
    positions: Annotated[str | None, typer.Option(
        help=f"Transformer positions: {_choices(POSITIONS, default_config('transformer').positions)}.")] = None,
    window: Annotated[int | None, typer.Option(help=f"attention-rnn: tokens its attention pools over ({_model_help('window')}).")] = None,
    bidirectional: Annotated[bool | None, typer.Option(
        "--bidirectional/--unidirectional", help="attention-rnn: bidirectional LSTMs re-reading each window (textgenrnn's option; "
                                                 f"slower; {show(_ATTENTION_RNN.bidirectional)} by default). seq2seq: the encoder "
                                                 f"({show(_S2S.bidirectional)} by default).", show_default=False)] = None,
    cell: Annotated[str | None, typer.Option(help=f"seq2seq: {_choices(CELLS, _S2S.cell)}.")] = None,
    attention: Annotated[str | None, typer.Option(
        help="seq2seq attention: "
             f"{_choices(ATTENTIONS, _S2S.attention, {'general': 'Luong', 'dot': 'Luong', 'additive': 'Bahdanau'})}.")] = None,
    input_feeding: Annotated[bool | None, typer.Option(
        "--input-feeding/--no-input-feeding", help="seq2seq: feed each attentional vector into the next decoder step (default "
                                                   f"{show(_S2S.input_feeding)}).", show_default=False)] = None,
    teacher_forcing: Annotated[float | None, typer.Option(
        help=f"seq2seq: share of training steps given the true previous token ({_model_help('teacher_forcing')}; lower = scheduled "
             "sampling).")] = None,
    max_source_len: Annotated[int | None, typer.Option(
        help=f"seq2seq: input tokens the model reads ({_model_help('max_source_len')}; longer inputs keep their end).")] = None,
    max_target_len: Annotated[int | None, typer.Option(
        help=f"seq2seq: tokens per answer, <eos> included ({_model_help('max_target_len')}; longer targets are cut).")] = None,
    embed_dim: Annotated[int | None, typer.Option(help=f"Embedding size ({_model_help('embed_dim', 'the hidden size')}).")] = None,
    dropout: Annotated[float | None, typer.Option(
        help=f"Dropout ({_model_help('dropout', '0.25 with the adaptive softmax, else 0')}).")] = None,
    tie_weights: Annotated[bool, typer.Option("--tie-weights", help="Share the embedding with the output layer.")] = False,
    softmax_cutoffs: Annotated[str | None, typer.Option(
        help="LSTM/GRU/RNN output layer: adaptive softmax cluster boundaries by frequency rank, like 2000,8000; 'full' for "
             "the full softmax (default auto: adaptive from 2,000 tokens, shortlist ~10%, clusters 4x larger each).")] = None,
    seq_len: Annotated[int | None, typer.Option(help=f"Training window length in tokens ({train_default('seq_len')}).")] = None,
    batch_size: Annotated[int | None, typer.Option(help=f"Windows per batch ({train_default('batch_size')}).")] = None,
    grad_accum: Annotated[int | None, typer.Option(help=f"Micro-batches per optimiser step ({train_default('grad_accum')}).")] = None,
    lr: Annotated[float | None, typer.Option(help=f"Peak learning rate ({train_default('lr')}).")] = None,
    schedule: Annotated[str | None, typer.Option(
        help=f"Learning-rate schedule: {_choices(SCHEDULES, TrainConfig.schedule, {'wsd': 'warm-up, stable, decay'})}.")] = None,
    min_lr_ratio: Annotated[float | None, typer.Option(
        help=f"Where the schedule ends, as a share of the peak rate ({train_default('min_lr_ratio')}).")] = None,
    optimizer: Annotated[str | None, typer.Option(
        help=f"{_choices(OPTIMIZERS, TrainConfig.optimizer, {'muon': 'Muon for the hidden weight matrices, AdamW for the rest'})} "
             f"({train_default('optimizer')}).")] = None,
    muon_lr: Annotated[float | None, typer.Option(
        help=f"Muon's peak learning rate; --lr is then AdamW's, for the embeddings and the rest ({train_default('muon_lr')}).")] = None,
    weight_decay: Annotated[float | None, typer.Option(
        help=f"Decoupled weight decay of the weight matrices (not biases, norms or an untied input embedding) "
             f"({train_default('weight_decay')}).")] = None,
    warmup: Annotated[int | None, typer.Option(help=f"Warm-up steps ({train_default('warmup_steps')}).")] = None,
    patience: Annotated[int | None, typer.Option(help="Early stopping: evaluations without improvement (0: off).")] = None,
    val_fraction: Annotated[float | None, typer.Option(
        help=f"Share held out for validation ({train_default('val_fraction')}, the end of the text).")] = None,
    eval_interval: Annotated[int | None, typer.Option(help="Evaluate every N steps (default: ~8 times per run).")] = None,
    save_every: Annotated[float | None, typer.Option(
        "--save-every", help="Minutes between checkpoints, on top of those at every evaluation "
                             f"({train_default('save_minutes')}).")] = None,
    precision: Annotated[str | None, typer.Option(
        help=f"auto (bf16 where the hardware is fast at it), bf16 or fp32 ({train_default('precision')}).")] = None,
    min_freq: Annotated[int, typer.Option(help="Tokens seen fewer times become <unk>.")] = 1,
    max_vocab: Annotated[int, typer.Option(help="Word tokenizer: vocabulary cap.")] = 20000,
    vocab_size: Annotated[int | None, typer.Option(help="bpe tokenizer: vocabulary size (default 4000, at most --max-vocab).")] = None,
    preview_length: Annotated[int | None, typer.Option(
        help=f"Tokens per sample preview ({train_default('preview_length')}; 0: none).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    nproc: Annotated[int, typer.Option(
        help="Processes to train with on this machine: torchrun + DistributedDataParallel, each taking "
             "--batch-size / N of every batch and cores / N threads (README, several processes).")] = 1,
) -> None:
    params = dict(locals())  # first: the command's flags, nothing else
    from . import distributed
    from .api import TextGenerator

    if nproc < 1:
        raise XuxieError(f"--nproc must be at least 1 (processes to train with), got {nproc}")
    corpus, out_dir = _train_corpus(corpus, out_dir, resume)
    if nproc > 1 and distributed.world_size() == 1:
        raise typer.Exit(_launch_torchrun(nproc, out_dir, resume, overwrite, corpus))
    if not distributed.is_main():
        err.quiet = True  # one process speaks for all
    model_options = _model_options(arch, params)
    train_options = {name: params[flag] for flag, name in _TRAIN_FLAGS.items()}
    err.print(f"[bold]xuxie train[/] {escape(' '.join(corpus))} → {escape(str(out_dir))}")
    tg = TextGenerator.train(
        list(corpus), arch=arch, tokenizer=tokenizer, out=out_dir, mode=mode, unit=unit, sentences=sentences,
        label_column=label_column, text_column=text_column,
        encoding=encoding, epochs=epochs, steps=steps, time=time, resume=resume, overwrite=overwrite,
        device=device, min_freq=min_freq, max_vocab=max_vocab, vocab_size=vocab_size, model_options=model_options,
        console=err, progress=not quiet, **train_options,
    )
    _print_trained(tg, out_dir)


# --------------------------------------------------------------------------- decoding options
# Each decoding option shared by the commands that decode is declared once, here; its help is the
# option's own documentation in GenerationConfig and its default GenerationConfig's. A command's
# parameters named like GenerationConfig fields are its decoding flags (see _decoding_flags).
DEFAULTS = GenerationConfig()
TopKOption = Annotated[int, typer.Option("--top-k", help=GenerationConfig.doc("top_k"))]
TopPOption = Annotated[float, typer.Option("--top-p", help=GenerationConfig.doc("top_p"))]
RepetitionPenaltyOption = Annotated[float, typer.Option("--repetition-penalty", help=GenerationConfig.doc("repetition_penalty"))]
NoRepeatNgramOption = Annotated[int, typer.Option("--no-repeat-ngram", help=GenerationConfig.doc("no_repeat_ngram_size"))]
NumBeamsOption = Annotated[int, typer.Option("--num-beams", help=GenerationConfig.doc("num_beams"))]
LengthPenaltyOption = Annotated[float, typer.Option("--length-penalty", help=GenerationConfig.doc("length_penalty"))]
SeedOption = Annotated[int | None, typer.Option("--seed", help=GenerationConfig.doc("seed"))]


def _decoding_flags(parameters: dict[str, Any]) -> dict[str, Any]:
    """The decoding flags among a command's ``parameters`` (its ``locals()`` on entry): those named
    like a GenerationConfig field, in the command's order (``None``: not given)."""
    names = GenerationConfig.option_names()
    return {name: value for name, value in parameters.items() if name in names}


def _generation_config(flags: dict[str, Any], base: GenerationConfig | None = None) -> GenerationConfig:
    """The one place the CLI turns decoding flags into a GenerationConfig, validated: ``base`` is
    the loaded model's defaults; without it (before the model loads) only the given length counts."""
    return (base or GenerationConfig(max_new_tokens=0)).updated(**flags).validate()


# --------------------------------------------------------------------------- generate
GENERATE_HELP = """Generate text from a trained model, printing it as it is written.

Examples:

    xuxie generate runs/hlm --prompt "宝玉" --temperature 0.5 -n 3

    xuxie generate runs/shakespeare --prompt "ROMEO:" --top-p 0.9 --max-new-tokens 400

    xuxie generate runs/shakespeare --prompt "To be" --num-beams 4 --temperature 0

    xuxie generate runs/hn -n 10 --temperature 0.8 --seed 1      # lines models stop by themselves
"""


@app.command(help=GENERATE_HELP)
@_command("decode")
def generate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory made by 'xuxie train'.", show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Text to continue.")] = "",
    n: Annotated[int, typer.Option("-n", "--n", help="Number of samples.")] = 1,
    temperature: Annotated[str, typer.Option(
        "--temperature", "-t", help=GenerationConfig.doc("temperature") + " A comma list (1.0,0.5,0.2) is cycled over the "
                                                                          "samples.")] = "1.0",
    top_k: TopKOption = DEFAULTS.top_k,
    top_p: TopPOption = DEFAULTS.top_p,
    max_new_tokens: Annotated[int | None, typer.Option(help="Tokens to write (default 200; 500 for lines models).")] = None,
    repetition_penalty: RepetitionPenaltyOption = DEFAULTS.repetition_penalty,
    no_repeat_ngram_size: NoRepeatNgramOption = DEFAULTS.no_repeat_ngram_size,
    num_beams: NumBeamsOption = DEFAULTS.num_beams,
    length_penalty: LengthPenaltyOption = DEFAULTS.length_penalty,
    stop: Annotated[list[str] | None, typer.Option("--stop", help=GenerationConfig.doc("stop"))] = None,
    seed: SeedOption = DEFAULTS.seed,
    context: Annotated[str | None, typer.Option(
        "--context", "-c", help="Context label to write for (models trained with --label-column).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Print as it is written.")] = True,
    to_file: Annotated[Path | None, typer.Option(
        "--to-file", help="Also write the samples, with a header of the settings, to this file.")] = None,
) -> None:
    from .api import TextGenerator, temperature_list

    flags = _decoding_flags(locals())
    # Check the cheap things before loading the model.
    temps = temperature_list(temperature)
    flags["temperature"] = temps[0]
    _generation_config(flags)
    if n < 1:
        raise XuxieError(f"-n must be at least 1, got {n}")
    tg = TextGenerator.load(model_dir, device)
    config = _generation_config(flags, tg.generation_config)
    if n == 1 and stream and num_beams == 1:
        pieces = tg.stream(prompt, generation_config=config, context=context)
        echo = "" if tg.is_seq2seq else prompt  # a seq2seq model answers the prompt
        sys.stdout.write(echo)
        written = [echo]
        for piece in pieces:
            sys.stdout.write(piece)
            sys.stdout.flush()
            written.append(piece)
        sys.stdout.write("\n")
        texts = ["".join(written)]
    else:
        texts = tg.generate(n, prompt, generation_config=config, temperature=temps, context=context)
        for i, text in enumerate(texts, 1):
            if n > 1:
                sys.stdout.write(f"--- sample {i} ---\n")
            sys.stdout.write(text + "\n")
        sys.stdout.flush()
    if to_file is not None:
        from .fileio import atomic_write_text
        from .write import samples_file_text

        settings = {"model": str(model_dir), "prompt": prompt, "n": n, **flags, "temperature": temps, "stop": stop or []}
        atomic_write_text(to_file, samples_file_text(texts, settings))
        err.print(f"wrote {len(texts)} sample(s) to {escape(str(to_file))}")


# --------------------------------------------------------------------------- continue
CONTINUE_HELP = """Continue a passage: a seq2seq model writes the next paragraph (and, with --paragraphs K,
feeds each paragraph back in to write the one after); a language model continues the text until
it has written K paragraphs.

Examples:

    xuxie continue runs/hlm-s2s --input para.txt --num-beams 4 --temperature 0

    xuxie continue runs/hlm-s2s --text "宝玉听了，忙起身。" --paragraphs 3 --temperature 0.7 --seed 1

    xuxie continue runs/hlm-s2s --input para.txt --plot-attention attention.png

    xuxie continue runs/replies --text "any good books?" --num-beams 8 --n-best 5

    xuxie continue runs/shakespeare --text "ROMEO: " --paragraphs 2      # any model works
"""


def _passage(input_file: Path | None, text: str | None, encoding: str | None) -> str:
    """The passage to continue: the --text, or the --input file's text without its outer line breaks."""
    if input_file is not None:
        from .corpus import read_text_file

        if not input_file.is_file():
            raise XuxieError(f"input file {input_file} does not exist; give a file with the passage to continue")
        text, _ = read_text_file(input_file, encoding)
        text = text.strip("\n")
    assert text is not None
    if not text.strip():
        raise XuxieError("the passage to continue is empty; give some text")
    return text


def _print_nbest(best: list[tuple[str, float, float]], title: str) -> None:
    """The n-best answers of beam search as a table: rank, score, log-probability, answer."""
    table = Table(title=title, show_lines=True)
    table.add_column("#")
    table.add_column("score", justify="right")
    table.add_column("log p", justify="right")
    table.add_column("answer")
    for i, (answer, logprob, score) in enumerate(best, 1):
        table.add_row(str(i), f"{score:.3f}", f"{logprob:.2f}", escape(answer))
    out.print(table)


@app.command("continue", help=CONTINUE_HELP)
@_command("decode")
def continue_(
    model_dir: Annotated[Path, typer.Argument(help="Model directory made by 'xuxie train'.", show_default=False)],
    input_file: Annotated[Path | None, typer.Option("--input", "-i", help="File with the passage to continue.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="The passage to continue.")] = None,
    paragraphs: Annotated[int, typer.Option("--paragraphs", "-k", help="Paragraphs to write.")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help=GenerationConfig.doc("temperature"))] = DEFAULTS.temperature,
    top_k: TopKOption = DEFAULTS.top_k,
    top_p: TopPOption = DEFAULTS.top_p,
    max_new_tokens: Annotated[int | None, typer.Option(
        help="Tokens per paragraph (seq2seq default: its --max-target-len; else 200).")] = None,
    repetition_penalty: RepetitionPenaltyOption = DEFAULTS.repetition_penalty,
    no_repeat_ngram_size: NoRepeatNgramOption = DEFAULTS.no_repeat_ngram_size,
    num_beams: NumBeamsOption = DEFAULTS.num_beams,
    length_penalty: LengthPenaltyOption = DEFAULTS.length_penalty,
    n_best: Annotated[int, typer.Option("--n-best", help="Beam search: print the N best answers with their scores (seq2seq).")] = 0,
    seed: SeedOption = DEFAULTS.seed,
    truncate: Annotated[bool, typer.Option(
        "--truncate", help="seq2seq: read only the end of an input longer than the model takes.")] = False,
    plot_attention: Annotated[Path | None, typer.Option(
        "--plot-attention", help="seq2seq: write a heatmap of the attention weights (PNG/PDF/SVG; one per paragraph: NAME-2.png "
                                 "…).")] = None,
    encoding: Annotated[str | None, typer.Option(help="Force the --input file's encoding.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
) -> None:
    from .api import TextGenerator, temperature_list
    from .limits import check_paragraphs

    flags = _decoding_flags(locals())
    if (input_file is None) == (text is None):
        raise XuxieError("give the passage to continue with --input FILE or --text \"…\" (one of them)")
    flags["temperature"] = temperature_list(temperature)[0]
    _generation_config(flags)
    if paragraphs < 1:
        raise XuxieError(f"--paragraphs must be at least 1, got {paragraphs}")
    check_paragraphs(paragraphs)
    if n_best < 0 or (n_best > 1 and n_best > num_beams):
        raise XuxieError(f"--n-best {n_best} needs at least as many beams: add --num-beams {max(n_best, 2)}")
    text = _passage(input_file, text, encoding)
    tg = TextGenerator.load(model_dir, device)
    if (plot_attention is not None or n_best > 1) and not tg.is_seq2seq:
        raise XuxieError("--plot-attention and --n-best are for seq2seq models; this one is a language model")
    config = _generation_config(flags, tg.generation_config)
    if n_best > 1:
        best = tg.nbest(text, n_best, num_beams=num_beams, generation_config=config, truncate=truncate)
        _print_nbest(best, f"{n_best} best of {num_beams} beams")
        return
    steps = tg.continue_paragraphs(text, paragraphs, generation_config=config, truncate=truncate)
    sys.stdout.write("\n".join(answer for _, answer in steps) + "\n")
    sys.stdout.flush()
    if plot_attention is not None:
        for k, (source, answer) in enumerate(steps, 1):
            path = plot_attention if k == 1 else plot_attention.with_name(f"{plot_attention.stem}-{k}{plot_attention.suffix or '.png'}")
            written = tg.plot_attention(source, answer, path, truncate=True)
            err.print(f"wrote attention heatmap {escape(str(written))}")


# --------------------------------------------------------------------------- write
WRITE_HELP = """Write interactively with a model: at each step see the text and the most likely next tokens
(⏎ is a line break, ␣ a space), then pick one (a number), let the model write (`w 20`), undo
(`u`), type your own text (`t TEXT` or any other line), save (`s FILE`), quit (`q`); `?` for help.

Examples:

    xuxie write runs/shakespeare --prompt "ROMEO:"

    xuxie write runs/hlm --prompt "宝玉" --top 5 --temperature 0.7 --seed 1
"""


@app.command(help=WRITE_HELP)
@_command("decode")
def write(
    model_dir: Annotated[Path, typer.Argument(help="Model directory made by 'xuxie train'.", show_default=False)],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="Text to start from.")] = "",
    top: Annotated[int, typer.Option("--top", help="Options shown at each step.")] = 10,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="Temperature when the model writes (w K); 0: greedy.")] = 1.0,
    seed: SeedOption = DEFAULTS.seed,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
) -> None:
    from .api import TextGenerator, temperature_list
    from .write import WritingSession, run

    if top < 1:
        raise XuxieError(f"--top must be at least 1, got {top}")
    temperature = temperature_list(temperature)[0]
    tg = TextGenerator.load(model_dir, device)
    if tg.is_seq2seq:
        raise XuxieError("xuxie write steers a language model token by token; a seq2seq model answers a whole input: use xuxie continue")
    session = WritingSession(tg, prompt, temperature=temperature, seed=seed)
    raise typer.Exit(run(session, top))


# --------------------------------------------------------------------------- evaluate / info
EVALUATE_HELP = """Score a model on held-out text: loss, perplexity and bits per character.

A seq2seq model is scored on source→target pairs (a .tsv/.jsonl file, or a plain text paired
paragraph by paragraph as in training): loss and perplexity of the targets, and BLEU and chrF
(sacrebleu; character-level for Chinese) of its answers — greedy by default — against them.

Examples:

    xuxie evaluate runs/shakespeare heldout.txt

    xuxie evaluate runs/replies test.tsv --max-pairs 500 --num-beams 4
"""


@app.command(help=EVALUATE_HELP)
@_command("evaluate")
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.", show_default=False)],
    text_file: Annotated[Path, typer.Argument(help="Text (or, for seq2seq, pairs) file to score.", show_default=False)],
    encoding: Annotated[str | None, typer.Option(help="Force the file encoding.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_pairs: Annotated[int, typer.Option(help="seq2seq: answers to write for BLEU/chrF (0: skip them; loss uses every pair).")] = 200,
    num_beams: Annotated[int, typer.Option(help="seq2seq: beam search for the answers (1: greedy, or sampling with --temperature).")] = 1,
    temperature: Annotated[float, typer.Option("--temperature", "-t", help="seq2seq answers: 0 greedy (default), >0 sampling.")] = 0.0,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or mps.")] = None,
) -> None:
    from .api import TextGenerator

    if max_pairs < 0:
        raise XuxieError(f"--max-pairs must be 0 or more, got {max_pairs}")
    tg = TextGenerator.load(model_dir, device)
    if not text_file.is_file():
        raise XuxieError(f"text file {text_file} does not exist; give a file to score")
    if tg.is_seq2seq:
        r = tg.evaluate_pairs(tg.read_pairs_for_eval(text_file, encoding), max_pairs=max_pairs, decode=max_pairs > 0,
                              num_beams=num_beams, temperature=temperature)
        r.pop("hypotheses", None)
        if as_json:
            out.print_json(json.dumps(r, ensure_ascii=False))
            return
        table = Table(title=f"{text_file} under {model_dir}", show_header=False)
        table.add_row("pairs", f"{r['pairs']:,}")
        table.add_row("loss (nats/token)", f"{r['loss']:.4f}")
        table.add_row("perplexity", f"{r['perplexity']:.2f}")
        table.add_row("bits per character", f"{r['bits_per_char']:.4f}")
        if "bleu" in r:
            how = f"beam {num_beams}" if num_beams > 1 else ("greedy" if temperature == 0 else f"sampled at T={temperature}")
            table.add_row(f"BLEU ({how}, {r['decoded']} answers, tokenize {r['bleu_tokenize']})", f"{r['bleu']:.2f}")
            table.add_row("chrF", f"{r['chrf']:.2f}")
        if r["truncated_sources"] or r["truncated_targets"]:
            table.add_row("cut to the model's lengths", f"{r['truncated_sources']} sources, {r['truncated_targets']} targets")
        out.print(table)
        return
    r = tg.evaluate_file(text_file, encoding, console=err)
    if as_json:
        out.print_json(json.dumps(r))
        return
    table = Table(title=f"{text_file} under {model_dir}", show_header=False)
    table.add_row("loss (nats/token)", f"{r['loss']:.4f}")
    table.add_row("perplexity", f"{r['perplexity']:.2f}")
    table.add_row("bits per character", f"{r['bits_per_char']:.4f}")
    table.add_row("tokens / chars", f"{r['tokens']:,} / {r['chars']:,}")
    if r["unknown_chars"]:
        table.add_row("unknown characters", str(r["unknown_chars"]))
    out.print(table)


@app.command(help="Show a model's configuration, size, vocabulary and training figures.\n\nExample:\n\n    xuxie info runs/shakespeare")
@_command("decode")
def info(
    model_dir: Annotated[Path, typer.Argument(help="Model directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw config.json.")] = False,
) -> None:
    from .api import TextGenerator
    from .chars import WHITESPACE_SYMBOLS
    from .checkpoint import checkpoints

    tg = TextGenerator.load(model_dir, "cpu")
    c = tg.config
    if as_json:
        out.print_json(json.dumps(c, ensure_ascii=False))
        return
    table = Table(title=str(model_dir), show_header=False)
    table.add_row("architecture", f"{c['arch']}  " + ", ".join(f"{k}={v}" for k, v in c["model"].items() if k != "vocab_size"))
    table.add_row("parameters", f"{tg.model.num_parameters():,}")
    sample = "".join(t for t in tg.tokenizer.tokens[4:40]).replace("\n", WHITESPACE_SYMBOLS["\n"])
    table.add_row("tokenizer", f"{c['tokenizer']}, {tg.tokenizer.vocab_size:,} tokens: {escape(sample)} …")
    table.add_row("mode", c["mode"])
    corpus = c.get("corpus", {})
    if corpus:
        table.add_row("corpus", f"{', '.join(corpus.get('sources', []))} ({corpus.get('chars', 0):,} chars, "
                                f"{', '.join(sorted(set(corpus.get('encodings', []))))})")
    for k, v in (c.get("results") or {}).items():
        table.add_row(k.replace("_", " "), f"{v:,}" if isinstance(v, int) else str(v))
    t = c.get("train") or {}
    if t:
        shown = ("seq_len", "batch_size", "lr", "schedule", "epochs", "steps", "time_minutes")
        table.add_row("training", ", ".join(f"{k}={t[k]}" for k in shown if t.get(k) is not None))
    if saved := checkpoints(model_dir):
        table.add_row("checkpoints", ", ".join(c.name for c in saved) + " (--resume continues from the first)")
    out.print(table)


# --------------------------------------------------------------------------- export
EXPORT_HELP = """Export a transformer model to another toolkit's format.

`--format hf` writes a Hugging Face transformers folder (config.json, model.safetensors,
generation_config.json, README.md, and tokenizer files for char models) that loads offline with
`AutoModelForCausalLM.from_pretrained(OUT)`: rotary models become GPTNeoXForCausalLM, learned
positions GPT2LMHeadModel. LSTM/GRU/RNN models cannot be exported.

Examples:

    xuxie export runs/shakespeare-tf exports/shakespeare-hf --format hf

    xuxie export runs/hlm-tf exports/hlm-hf --overwrite
"""


@app.command(help=EXPORT_HELP)
@_command("decode")
def export(
    model_dir: Annotated[Path, typer.Argument(help="Model directory made by 'xuxie train --arch transformer'.", show_default=False)],
    out_dir: Annotated[Path, typer.Argument(
        help="Folder to write: new, empty, or with --overwrite an earlier export (a folder xuxie did not write is never "
             "replaced).", show_default=False)],
    format: Annotated[str, typer.Option("--format", "-f", help="Export format: hf (Hugging Face transformers).")] = "hf",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an earlier export in OUT (only the files xuxie wrote).")] = False,
) -> None:
    from .export import export_model

    path = export_model(model_dir, out_dir, format=format, overwrite=overwrite)
    err.print(f"exported {escape(str(model_dir))} → {escape(str(path))}")
    err.print(f"load with: AutoModelForCausalLM.from_pretrained({escape(repr(str(path)))})")


# --------------------------------------------------------------------------- analyze
ANALYZE_HELP = """Analyse what models write: at each temperature (and with greedy decoding, beam search and
top-p sampling) write samples and measure diversity (distinct-n), repetition, self-BLEU, novelty
against the training corpus (share of character 8-grams found in it, longest copied span), the
mean log-probability of the samples under the model, and, with --heldout, perplexity and bits per
character. Writes report.html (self-contained, plots embedded), report.md, metrics.json,
samples.json and PNG plots to --out.

Examples:

    xuxie analyze runs/shakespeare --out reports/shakespeare

    xuxie analyze runs/lstm runs/tf --heldout heldout.txt --temperatures 0.2,0.5,1.0,1.5 --out reports/compare

    xuxie analyze runs/hlm --prompt "宝玉" --samples 10 --length 300 --out reports/hlm

    xuxie analyze runs/hlm-s2s --prompt "宝玉听了，忙起身。" --strategies greedy,beam --out reports/s2s
"""


@app.command(help=ANALYZE_HELP)
@_command("decode")
def analyze(
    model_dirs: Annotated[list[Path], typer.Argument(help="Model directories made by 'xuxie train' (one or more).", show_default=False)],
    out_dir: Annotated[Path, typer.Option(
        "--out", "-o", help="Folder for the report (created; report files in it are replaced).", show_default=False)],
    corpus: Annotated[str | None, typer.Option(
        "--corpus", help="Training text to measure novelty against (default: the corpus each model's config.json records).")] = None,
    heldout: Annotated[Path | None, typer.Option("--heldout", help="Held-out text to score (perplexity, bits per character).")] = None,
    temperatures: Annotated[str, typer.Option("--temperatures", "-t", help="Comma list of temperatures.")] = "0.2,0.5,0.8,1.0,1.2",
    samples: Annotated[int, typer.Option("--samples", "-n", help="Samples per model and temperature.")] = 20,
    length: Annotated[int, typer.Option("--length", help="Tokens per sample.")] = 200,
    prompt: Annotated[str, typer.Option(
        "--prompt", "-p", help="Text the samples continue (seq2seq models: the input they answer; required for them).")] = "",
    strategies: Annotated[str, typer.Option(
        "--strategies", help="Decoding strategies to compare too: greedy, beam, top-p (comma list, or none).")] = "greedy,beam,top-p",
    seed: Annotated[int, typer.Option(help="Seed for the samples.")] = 0,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
) -> None:
    from .report import SHORT_NAMES, parse_strategies, parse_temperatures
    from .report import analyze as run_analysis

    # Check the cheap things before loading models.
    parse_temperatures(temperatures)
    parse_strategies(strategies)
    if samples < 1:
        raise XuxieError(f"--samples must be at least 1, got {samples}")
    if length < 1:
        raise XuxieError(f"--length must be at least 1, got {length}")
    report = run_analysis(model_dirs, out_dir, corpus=corpus, heldout=heldout, temperatures=temperatures, samples=samples,
                          length=length, prompt=prompt, strategies=strategies, seed=seed, device=device,
                          progress=lambda msg: err.print(f"[dim]{escape(msg)}[/]"))

    def cell(key: str, v: Any) -> str:
        if not isinstance(v, (int, float)):
            return "–"
        return f"{v:.0f}" if key == "longest_copy_max" else f"{v:.1f}" if key == "self_bleu" else f"{v:.3f}"

    keys = list(SHORT_NAMES)
    for r in report["models"]:
        table = Table(title=f"{escape(r['name'])} ({r['arch']}, {r['parameters']:,} parameters)")
        table.add_column("decoding")
        for k in keys:
            table.add_column(SHORT_NAMES[k], justify="right")
        for row in r["by_temperature"]:
            table.add_row(f"T={row['temperature']:g}", *(cell(k, row.get(k)) for k in keys))
        for row in r["by_strategy"]:
            table.add_row(row["strategy"], *(cell(k, row.get(k)) for k in keys))
        out.print(table)
        if r["heldout"]:
            h = r["heldout"]
            out.print(f"held-out: loss {h['loss']:.4f} nats/token, perplexity {h['perplexity']:.2f}, {h['bits_per_char']:.4f} bits/char")
        for note in r["notes"]:
            err.print(f"[yellow]note:[/] {escape(r['name'])}: {escape(note)}")
    f = report["files"]
    err.print(f"wrote {escape(f['report_html'])} (and report.md, metrics.json, samples.json, {len(f['plots'])} plots) "
              f"in {report['timing']['total_seconds']:.1f} s")


# --------------------------------------------------------------------------- serve
SERVE_HELP = """Serve models over HTTP: OpenAI's API (/v1/completions, /v1/chat/completions,
/v1/models), /tokenize, /detokenize, /health, /metrics, and a playground at /.

Requests to a model are decoded together (continuous batching), every architecture; a seeded
request writes the same text alone and amid others. Name a model with NAME=DIR (default: the
folder's name). Listens on 127.0.0.1 unless --host says otherwise; --api-key (or XUXIE_API_KEY)
protects every route but /health and the playground's page.

Examples:

    xuxie serve runs/shakespeare

    xuxie serve hlm=runs/hlm-lstm gpt=runs/hlm-tf --port 8080 --api-key secret

    curl localhost:8000/v1/completions -H 'Content-Type: application/json' \\
         -d '{"model": "shakespeare", "prompt": "ROMEO:", "max_tokens": 100}'
"""
_LIMITS = ServerLimits()


@app.command(help=SERVE_HELP)
@_command("decode")
def serve(
    models: Annotated[list[str], typer.Argument(help="Model directories, each DIR or NAME=DIR.", show_default=False)],
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface; use --api-key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    api_key: Annotated[str | None, typer.Option(envvar="XUXIE_API_KEY", show_default=False,
                                                help="Require 'Authorization: Bearer KEY' (also XUXIE_API_KEY).")] = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Sequences decoded together per model.")] = _LIMITS.max_rows,
    max_queue: Annotated[int, typer.Option(min=0, help="Requests waiting per model; beyond it: HTTP 429.")] = _LIMITS.max_queue,
    max_tokens: Annotated[int, typer.Option(min=1, help="Most new tokens a sequence may ask for.")] = _LIMITS.max_tokens,
    max_n: Annotated[int, typer.Option(min=1, help="Most sequences a request may ask for (prompts × n).")] = _LIMITS.max_n,
    max_prompt_tokens: Annotated[int, typer.Option(min=1, help="Longest prompt, in tokens.")] = _LIMITS.max_prompt_tokens,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds a request may take (then HTTP 408).")] = _LIMITS.timeout,
    device: Annotated[str | None, typer.Option(help="cpu, cuda, mps (default: the best there is).", show_default=False)] = None,
) -> None:
    from .server.run import serve as run_server

    limits = ServerLimits(max_tokens=max_tokens, max_n=max_n, max_prompt_tokens=max_prompt_tokens, max_rows=max_concurrency,
                          max_queue=max_queue, timeout=timeout)

    def ready(url: str, names: list[str]) -> None:
        err.print(f"serving {', '.join(names)} at {url}  (playground: {url}/, API: {url}/v1, docs: {url}/docs; Ctrl-C stops)",
                  soft_wrap=True)

    run_server(models, host, port, api_key, limits, device, on_ready=ready)


def main() -> None:
    app(prog_name="xuxie")


if __name__ == "__main__":
    main()
