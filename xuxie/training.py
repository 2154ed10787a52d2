"""The :class:`Trainer`: the loop — budget, learning-rate schedule, steps, evaluations — and resume.

It knows nothing model-specific: a training objective (:mod:`xuxie.objectives`: a language model,
or source→target pairs) gives its batches, loss and evaluation. What happens at the loop's events
is up to callbacks (:mod:`xuxie.callbacks`, Keras style) that the user can add to or replace:
checkpoints, early stopping, the plateau schedule, sample previews, the metrics log and the
progress bar are all callbacks.
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import callbacks as cbs
from . import checkpoint as ckpt
from . import distributed
from .callbacks import Callback, Checkpoint, EarlyStopping, MetricsLog, ProgressBar, ReduceLROnPlateau, SamplePreview, default_callbacks
from .decoding import DecodingSetup, GenerationConfig
from .errors import XuxieError, XuxieWarning, check_numbers
from .fileio import atomic_write_text
from .models import LanguageModel
from .models.heads import AdaptiveHead
from .objectives import objective_for, pair_loss
from .optim import Muon, Optimizers
from .threads import threads_scope
from .tokenizers import Tokenizer

LN2 = math.log(2)
SCHEDULES = ("cosine", "wsd", "plateau", "constant")
OPTIMIZERS = ("adamw", "muon")
PRECISIONS = ("auto", "bf16", "fp32")


@dataclass
class TrainConfig:
    """Training settings. Defaults were chosen by measurement on 2 CPU cores (see README)."""

    seq_len: int = 128
    batch_size: int = 32
    grad_accum: int = 1  # micro-batches of batch_size per optimiser step
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50  # or 5% of the budget, whichever ends first
    schedule: str = "cosine"
    min_lr_ratio: float = 0.1
    decay_fraction: float = 0.3  # wsd: the last share of the budget, over which the rate falls linearly
    optimizer: str = "adamw"  # muon: Muon for the hidden weight matrices, AdamW for the rest
    muon_lr: float = 0.02  # Muon's peak rate (its updates are orthogonalised, on another scale than AdamW's)
    grad_clip: float = 1.0
    # Budget: whichever comes first. Nothing set: 5 minutes.
    epochs: float | None = None
    steps: int | None = None
    time_minutes: float | None = None
    # Evaluation.
    val_fraction: float = 0.1
    eval_interval: int | None = None  # steps; None: every eval_seconds
    eval_seconds: float | None = None  # None: about 8 evaluations over a time budget
    eval_tokens: int = 40_000  # periodic evaluations read a fixed sample of this many validation tokens
    # The final evaluation reads the whole validation split up to this many tokens (every corpus
    # of a few MB whole), beyond it a fixed sample spread over it: a GB corpus's evaluation must
    # not take longer than its training (its standard error is reported with it).
    final_eval_tokens: int = 1_000_000
    save_minutes: float = 3.0  # a checkpoint at least this often, between evaluations too
    patience: int = 0  # early stopping after this many evaluations without improvement; 0: off
    plateau_factor: float = 0.5
    plateau_patience: int = 1
    precision: str = "auto"
    seed: int = 1234
    log_every: int = 50
    preview_temperatures: tuple[float, ...] = (0.2, 0.5, 1.0, 1.2)
    preview_length: int = 200

    def validate(self) -> TrainConfig:
        check_numbers(vars(self))
        if self.grad_accum < 1:
            raise XuxieError(f"--grad-accum must be at least 1, got {self.grad_accum}")
        if self.seq_len < 1 or self.batch_size < 1:
            raise XuxieError("--seq-len and --batch-size must be at least 1")
        if not self.lr > 0:
            raise XuxieError(f"learning rate must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            raise XuxieError(f"unknown schedule '{self.schedule}'; choose one of: {', '.join(SCHEDULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise XuxieError(f"unknown optimizer '{self.optimizer}'; choose one of: {', '.join(OPTIMIZERS)}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise XuxieError(f"--min-lr-ratio must be in [0, 1] (the floor of the schedule over the peak rate), got {self.min_lr_ratio}")
        if not 0 < self.decay_fraction <= 1:
            raise XuxieError(f"decay fraction must be in (0, 1], got {self.decay_fraction}")
        if not self.muon_lr > 0:
            raise XuxieError(f"Muon's learning rate must be positive, got {self.muon_lr}")
        if self.weight_decay < 0:
            raise XuxieError(f"--weight-decay must be 0 (off) or positive, got {self.weight_decay}")
        if self.precision not in PRECISIONS:
            raise XuxieError(f"unknown precision '{self.precision}'; choose one of: {', '.join(PRECISIONS)}")
        for name in ("epochs", "steps", "time_minutes"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise XuxieError(f"--{name.replace('_minutes', '')} must be positive, got {v}")
        if not self.save_minutes > 0:
            raise XuxieError(f"--save-every must be a positive number of minutes, got {self.save_minutes}")
        if self.eval_interval is not None and self.eval_interval < 1:
            raise XuxieError(f"eval interval must be at least 1 step, got {self.eval_interval}")
        if self.patience < 0:
            raise XuxieError(f"patience must be 0 (off) or more, got {self.patience}")
        world = distributed.world_size()
        if self.batch_size % world:
            raise XuxieError(f"--batch-size {self.batch_size} is not a multiple of the {world} training processes; "
                             f"give a multiple of {world} (each process takes an equal share of every batch)")
        return self

    def budget_minutes(self) -> float | None:
        if self.epochs is None and self.steps is None and self.time_minutes is None:
            return 5.0
        return self.time_minutes

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preview_temperatures"] = list(self.preview_temperatures)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "preview_temperatures" in d:
            d["preview_temperatures"] = tuple(d["preview_temperatures"])
        return cls(**d)


@dataclass
class TrainState:
    """Everything about progress that --resume restores."""

    step: int = 0
    tokens: int = 0
    elapsed: float = 0.0  # seconds of training (including evaluations) over all sessions
    best_val: float = float("inf")
    best_step: int = 0
    lr_scale: float = 1.0  # a ReduceLROnPlateau callback (--schedule plateau) lowers it
    last_eval_step: int = -1
    last_eval_time: float = 0.0
    train_loss: float = float("nan")  # exponential moving average
    finished: bool = False


# --------------------------------------------------------------------------- the trainer
def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 when asked, or with ``auto`` when the device runs it fast (CPUs with AVX-512 bf16 /
    AMX, CUDA with bf16); ``None`` means fp32. Asking for bf16 where it would be emulated — many
    times slower, measured on Zen 3 — is a clear error rather than a silent crawl."""
    if precision == "fp32":
        return None
    judged = device.type in ("cpu", "cuda")  # MPS and others: bf16 only when asked, untested here
    if precision == "bf16":
        if judged and not bf16_is_fast(device):
            need = "AVX-512 bf16 or AMX" if device.type == "cpu" else "a GPU with bf16 (compute capability 8 or more)"
            raise XuxieError(f"--precision bf16 needs {need}, which this {device.type} lacks (it would run several times slower); "
                             "use --precision auto or fp32")
        return torch.bfloat16
    return torch.bfloat16 if judged and bf16_is_fast(device) else None


def bf16_is_fast(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _forget_log_after(log: Path, step: int) -> None:
    """Drop what log.jsonl says about steps after ``step``: a killed run logged steps that its
    resumed run does again, and a log read as one history must not hold them twice. A line torn
    by the kill goes too."""
    if not log.is_file():
        return
    kept = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line + "\n")
    atomic_write_text(log, "".join(kept))


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C (or SIGTERM/SIGHUP) once the last checkpoint is safely written;
    ``exit_code`` follows the shell's convention, 128 + the signal's number."""

    def __init__(self, message: str, signum: int = signal.SIGINT):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


#: signals that stop training at the next step boundary with a checkpoint (SIGHUP: a closed
#: terminal or SSH session; SIGTERM: kill, systemd, docker stop, a batch scheduler's time limit)
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class StopSignals:
    """While entered: Ctrl-C, SIGTERM and SIGHUP are noted in :attr:`received`, for training to
    stop at the next step boundary (so the checkpoint written is consistent); a second one
    interrupts at once. Only on the main thread. Installed even when SIGINT was inherited as
    ignored (a job started in the background by a script): found when such a run never answered
    Ctrl-C in CI. The same under torchrun: with each restart's process group kept apart
    (:func:`xuxie.distributed.init`), a group one of whose processes was killed restarted and went
    on 20 times in 20 with these handlers (``benchmarks/elastic_restart.py``)."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _note(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._note)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def make_optimizer(model: LanguageModel, config: TrainConfig) -> torch.optim.Optimizer | Optimizers:
    """AdamW (no weight decay on biases, norms and input embeddings — an embedding tied to the
    output layer is that layer too, and decays); with ``muon``, Muon takes the hidden weight
    matrices. Each group's ``lr_ratio`` is its rate over ``config.lr``."""
    matrices, decay, no_decay = [], [], []
    hidden = {id(p) for p in hidden_matrices(model)} if config.optimizer == "muon" else set()
    outputs = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Linear)}
    inputs_only = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)} - outputs
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in hidden:
            matrices.append(p)
        else:
            (decay if p.dim() >= 2 and id(p) not in inputs_only else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": config.weight_decay, "lr_ratio": 1.0},
              {"params": no_decay, "weight_decay": 0.0, "lr_ratio": 1.0}]
    kwargs: dict[str, Any] = {"lr": config.lr, "betas": (0.9, 0.99)}
    if model.device.type == "cpu":
        kwargs["foreach"] = True
    adamw = torch.optim.AdamW(groups, **kwargs)
    if not matrices:
        return adamw
    ns_dtype = torch.bfloat16 if bf16_is_fast(model.device) else torch.float32
    muon = Muon([{"params": matrices, "lr_ratio": config.muon_lr / config.lr}], lr=config.muon_lr,
                weight_decay=config.weight_decay, ns_dtype=ns_dtype)
    return Optimizers(muon, adamw)


def hidden_matrices(model: torch.nn.Module) -> list[torch.Tensor]:
    """The weight matrices between the input embedding and the output layer (what Muon is for):
    every 2-D parameter except embeddings' and the layers that give the logits (a Linear to the
    vocabulary, tied or not, or an adaptive softmax)."""
    vocab = getattr(model.config, "vocab_size", None)
    outer = {id(p) for m in model.modules() if isinstance(m, (torch.nn.Embedding, AdaptiveHead)) or
             (isinstance(m, torch.nn.Linear) and m.out_features == vocab) for p in m.parameters()}
    return [p for p in model.parameters() if p.dim() == 2 and id(p) not in outer]


class Trainer:
    """Trains ``model`` on encoded data — an id array, or :class:`~xuxie.data.PairData` for an
    encoder–decoder — until the budget is spent or a callback stops it."""

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer, train_ids: np.ndarray,
                 val_ids: np.ndarray | None, config: TrainConfig, out_dir: str | Path | None = None,
                 run_info: dict[str, Any] | None = None, callbacks: Sequence[Callback] | None = None,
                 val_chars: int | None = None, mode: str = "text"):
        self.config = config.validate()
        self.model = model
        self.tokenizer = tokenizer
        self.mode = mode
        self.device = model.device
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.run_info = dict(run_info or {})
        self.objective = objective_for(train_ids, val_ids, config.seq_len, config.batch_size, self.device, config.seed)
        self.batches = self.objective.batches
        self.val_ids = self.objective.val_data  # None: no validation text
        #: source→target pairs (an encoder–decoder) rather than one stream of text
        self.pairs = self.objective.answers_input
        # Tokens per character of the validation text: bits per character = bits per token × this.
        self.tokens_per_char = (self.objective.val_tokens / val_chars) if (val_chars and self.val_ids is not None) else 1.0
        #: the input the sample previews answer (encoder–decoder models)
        self.preview_input: str | None = None
        self.optimizer = make_optimizer(model, config)
        self.amp_dtype = autocast_dtype(config.precision, self.device)
        # Every process draws the same windows (one generator, one seed) and trains on its share
        # of them: N processes × batch B/N follow one process × batch B, and resume is exact.
        self.generator = torch.Generator()
        self.generator.manual_seed(config.seed)
        torch.manual_seed(config.seed + distributed.rank())  # dropout: each process its own
        self.world = distributed.world_size() if distributed.active() else 1
        #: the training forward pass: the loss of a batch, wrapped in DistributedDataParallel under torchrun
        self.train_forward: torch.nn.Module = _BatchLoss(model, self.objective, self.amp_dtype)
        if self.world > 1:
            self.train_forward = torch.nn.parallel.DistributedDataParallel(
                self.train_forward, find_unused_parameters=not model.uses_every_parameter)
        self.state = TrainState()
        self.callbacks: list[Callback] = cbs.with_schedule_callbacks(callbacks or [], config)
        self.improved = False  # whether the latest evaluation is the best so far
        self.current_lr = config.lr
        self.tokens_per_second = 0.0
        self._stop_reason: str | None = None
        self._session_start = 0.0
        self._session_elapsed0 = 0.0
        self._rate_window: list[tuple[float, int]] = []
        self.final_metrics: dict[str, Any] = {}

    # -- budget and schedule -----------------------------------------------------------------
    def total_steps(self) -> int | None:
        c = self.config
        limits = []
        if c.steps is not None:
            limits.append(int(c.steps))
        if c.epochs is not None:
            limits.append(max(1, int(round(c.epochs * self.batches.steps_per_epoch() / c.grad_accum))))
        return min(limits) if limits else None

    def budget_seconds(self) -> float | None:
        m = self.config.budget_minutes()
        return None if m is None else m * 60.0

    def progress_fraction(self) -> tuple[str, float]:
        """(what limits the run, fraction of it done)."""
        fracs = []
        total = self.total_steps()
        if total:
            fracs.append(("steps", self.state.step / total))
        secs = self.budget_seconds()
        if secs:
            fracs.append(("time", self.state.elapsed / secs))
        return max(fracs, key=lambda x: x[1]) if fracs else ("steps", 0.0)

    def budget_done(self) -> bool:
        return self.progress_fraction()[1] >= 1.0

    def lr_at(self, step: int, fraction: float) -> float:
        c = self.config
        # Warm-up ends after warmup_steps or 5% of the budget, whichever comes first: a slow model
        # (large vocabulary, big batch) would otherwise spend much of a short run warming up.
        warm = min(1.0, max((step + 1) / max(c.warmup_steps, 1), fraction / 0.05))
        scale = 1.0  # constant, and plateau: there a ReduceLROnPlateau callback lowers lr_scale
        f = min(max(fraction, 0.0), 1.0)
        if c.schedule == "cosine":
            scale = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * f))
        elif c.schedule == "wsd":  # warmup, stable, then a linear decay over the last decay_fraction
            scale = c.min_lr_ratio + (1 - c.min_lr_ratio) * min(1.0, (1 - f) / c.decay_fraction)
        return c.lr * warm * scale * self.state.lr_scale

    def request_stop(self, reason: str) -> None:
        self._stop_reason = reason

    # -- state for resume --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "state": json.dumps(asdict(self.state)),
            "callbacks": cbs.callback_states(self.callbacks),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "batches": self.batches.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "torch_rng_ranks": distributed.gather(torch.get_rng_state()),  # every process's own
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        saved = json.loads(d["state"])
        self.state = TrainState(**{k: v for k, v in saved.items() if k in _STATE_FIELDS})  # older files hold more
        cbs.load_callback_states(self.callbacks, d.get("callbacks"), saved)
        self.optimizer.load_state_dict(d["optimizer"])
        self.generator.set_state(d["generator"])
        self.batches.load_state_dict(d.get("batches", {}))  # none: a checkpoint from before the epoch order
        ranks = d.get("torch_rng_ranks")
        torch.set_rng_state(ranks[distributed.rank()] if ranks and len(ranks) == self.world else d["torch_rng"])

    def resume(self) -> None:
        """Continue from ``out_dir``'s newest whole checkpoint: weights, optimiser, step, schedule,
        RNG, callbacks. With none (killed before the first), the run starts again from step 0."""
        if self.out_dir is None:
            raise XuxieError("resume needs an output directory")
        d = ckpt.load_checkpoint(self.out_dir, self.model, self.device)
        if d is None:
            warnings.warn(f"{self.out_dir} has no checkpoint yet; training starts again from step 0", XuxieWarning, stacklevel=2)
        else:
            self.load_state_dict(d)
        if distributed.is_main():
            _forget_log_after(self.out_dir / ckpt.LOG, self.state.step)

    # -- results -----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        s = self.state
        return {"steps": s.step, "tokens": s.tokens, "seconds": round(s.elapsed, 1),
                "best_val_loss": None if math.isinf(s.best_val) else round(s.best_val, 5),
                "best_val_bpc": None if math.isinf(s.best_val) else round(s.best_val * self.tokens_per_char / LN2, 5),
                "best_step": s.best_step, "tokens_per_s": round(self.tokens_per_second, 1),
                "precision": "bf16" if self.amp_dtype == torch.bfloat16 else "fp32",
                **{f"final_{k}": v if v is None or isinstance(v, int) else round(v, 5)
                   for k, v in self.final_metrics.items() if k.startswith("val_")}}

    def run_record(self) -> dict[str, Any]:
        """What config.json says of the run: how it was set up, its training settings, its results so far."""
        return {**self.run_info, "train": self.config.to_dict(), "results": self.summary()}

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, max_tokens: int | None = None, amp: bool = True) -> dict[str, float]:
        """The objective's validation loss (``loss``, ``ppl``, ``tokens``) and ``bpc``."""
        r = self.objective.evaluate(self.model, max_tokens, self.amp_dtype if amp else None)
        return {**r, "bpc": r["loss"] * self.tokens_per_char / LN2}

    def _val_metrics(self, final: bool) -> dict[str, Any]:
        """Validation figures for a metrics dict: during training on a fixed sample of ``eval_tokens``
        with autocast; the final ones — the figure to report — in fp32 on the whole validation set
        up to ``final_eval_tokens`` (then a fixed sample of that many), with their standard error."""
        if self.val_ids is None:
            return {}
        # The main process evaluates; the others wait for its figures and go on with the same.
        budget = self.config.final_eval_tokens if final else self.config.eval_tokens
        r = self.evaluate(budget, amp=not final) if distributed.is_main() else None
        r = distributed.broadcast(r)
        return {"val_loss": r["loss"], "val_ppl": r["ppl"], "val_bpc": r["bpc"], "val_tokens": r["tokens"],
                "val_loss_stderr": r["loss_stderr"]}

    def _evaluate(self) -> dict[str, Any]:
        """The metrics dict callbacks get, and the run's best so far (:attr:`improved`)."""
        s = self.state
        metrics: dict[str, Any] = {"step": s.step, "elapsed": round(s.elapsed, 2), "tokens": s.tokens,
                                   "train_loss": s.train_loss, "lr": self.current_lr,
                                   "tokens_per_s": round(self.tokens_per_second, 1), **self._val_metrics(final=False)}
        loss = cbs.monitored(metrics)
        self.improved = cbs.improves(loss, s.best_val)
        if self.improved:
            s.best_val, s.best_step = loss, s.step
        s.last_eval_step = s.step
        s.last_eval_time = s.elapsed
        return metrics

    def preview(self, temperatures: Sequence[float], length: int) -> list[tuple[float, str]]:
        was_training = self.model.training
        self.model.eval()
        try:
            # The same end, suppressed ids and constraints as the trained model will decode with.
            setup = DecodingSetup.for_model(self.model, self.tokenizer, self.mode)
            if self.pairs:  # answer the first validation (else training) source
                data = self.val_ids if self.val_ids is not None else self.batches.data
                prompt = [int(t) for t in data.src[0, :data.src_len[0]]]
                self.preview_input = self.tokenizer.decode(prompt)
                length = min(length, getattr(self.model.config, "max_target_len", length))
            else:
                prompt = setup.prompt_ids("")
            out = []
            for i, temp in enumerate(temperatures):
                cfg = GenerationConfig(max_new_tokens=length, temperature=temp, seed=self.config.seed + self.state.step + i)
                out.append((temp, setup.texts(prompt, cfg)[0]))
            return out
        finally:
            self.model.train(was_training)

    def _eval_due(self) -> bool:
        c, s = self.config, self.state
        if c.eval_interval is not None:
            return s.step % c.eval_interval == 0
        every = c.eval_seconds
        if every is None:
            secs = self.budget_seconds()
            total = self.total_steps()
            if secs is None and total:
                return s.step % max(1, total // 8) == 0
            every = min(max((secs or 600) / 8, 10.0), 300.0)
        return s.elapsed - s.last_eval_time >= every

    # -- the loop ----------------------------------------------------------------------------
    def _train_step(self, lr: float) -> float:
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_ratio", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        n = self.config.grad_accum
        total = 0.0
        for i in range(n):
            batch = _share(self.batches.sample(self.generator), distributed.rank(), self.world)
            # Gradients are averaged over the processes once, on the last micro-step.
            with self.train_forward.no_sync() if self.world > 1 and i < n - 1 else contextlib.nullcontext():
                loss = self.train_forward(batch)
                (loss / n).backward()
            total += loss.item()
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        return distributed.mean(total / n)

    def _tick(self) -> None:
        s = self.state
        now = time.perf_counter()
        s.elapsed = self._session_elapsed0 + (now - self._session_start)
        if self.world > 1:  # one clock for all: time budget, evaluations and saves agree
            s.elapsed = distributed.agree(s.elapsed)[0]
        self._rate_window.append((now, s.tokens))
        if len(self._rate_window) > 50:
            self._rate_window.pop(0)
        (t0, n0), (t1, n1) = self._rate_window[0], self._rate_window[-1]
        if t1 > t0:
            self.tokens_per_second = (n1 - n0) / (t1 - t0)

    @threads_scope("train")
    def fit(self) -> dict[str, Any]:
        """Train until the budget is spent (or a callback stops it); returns the final metrics."""
        self._begin_session()
        with StopSignals() as stop:
            try:
                self._call("on_train_begin")
                while not self.budget_done() and self._stop_reason is None:
                    if distributed.agree(float(stop.received is not None))[0]:  # any process told to stop
                        raise KeyboardInterrupt
                    self._step()
            except KeyboardInterrupt:
                self._tick()
                self._call("on_interrupt")
                signum = stop.received or signal.SIGINT
                raise TrainingInterrupted(f"interrupted ({signal.Signals(signum).name}) at step {self.state.step}; "
                                          "the checkpoint is saved — "
                                          "continue with --resume", signum) from None
        return self._finish()

    def _begin_session(self) -> None:
        s = self.state
        if s.finished and self.budget_done():
            raise XuxieError(f"this run already reached its budget (step {s.step}, {s.elapsed / 60:.1f} min); raise "
                             "--steps/--epochs/--time to train further")
        s.finished = False  # a run killed after its last step but before the end is finished below
        self.model.train()
        self._session_start = time.perf_counter()
        self._session_elapsed0 = s.elapsed
        self._rate_window = [(self._session_start, s.tokens)]

    def _step(self) -> None:
        s = self.state
        self.current_lr = self.lr_at(s.step, self.progress_fraction()[1])
        loss = self._train_step(self.current_lr)
        if not math.isfinite(loss):
            raise XuxieError(f"training diverged at step {s.step + 1} (loss {loss}); lower --lr or raise --warmup")
        s.step += 1
        s.tokens += self.batches.tokens_per_batch * self.config.grad_accum
        s.train_loss = loss if math.isnan(s.train_loss) else 0.98 * s.train_loss + 0.02 * loss
        self._tick()
        if self._eval_due() and not self.budget_done():
            self._call("on_evaluate", self._evaluate())
            self._tick()
        # After the evaluation: a checkpoint written here is resumed after this step's
        # evaluation, so a resumed run repeats exactly what an unbroken one does.
        self._call("on_step_end", loss)

    def _finish(self) -> dict[str, Any]:
        s = self.state
        if s.last_eval_step != s.step:
            self._call("on_evaluate", self._evaluate())
        with self._saved_weights() as step:
            val = self._val_metrics(final=True)
        final: dict[str, Any] = {"step": s.step, "elapsed": round(s.elapsed, 2), "tokens": s.tokens,
                                 "tokens_per_s": round(self.tokens_per_second, 1), **val}
        if val:
            final["val_step"] = step
        self.final_metrics = final
        s.finished = True
        if self._stop_reason:
            final["stopped"] = self._stop_reason
        self._call("on_train_end", final)
        distributed.barrier()  # the model directory is whole before any process reads it
        return final

    @contextlib.contextmanager
    def _saved_weights(self) -> Iterator[int]:
        """For the block, the model holds the weights its directory keeps as the model
        (``model.safetensors``: those of the best evaluation), so the final figures describe the
        model the user gets, not an overfitted last step; yields their step. Then its own again."""
        s = self.state
        path = self.out_dir / ckpt.WEIGHTS if self.out_dir is not None else None
        if (path is None or self.val_ids is None or math.isinf(s.best_val) or s.best_step == s.step
                or not distributed.is_main() or not path.exists()):
            yield s.step
            return
        own = {k: v.clone() for k, v in self.model.state_dict().items()}
        ckpt.load_weights(self.model, path)
        try:
            yield s.best_step
        finally:
            self.model.load_state_dict(own)

    def _call(self, event: str, *args: Any) -> None:
        main = distributed.is_main()
        for cb in self.callbacks:
            if main or cb.every_process:
                getattr(cb, event)(self, *args)


class _BatchLoss(torch.nn.Module):
    """The training loss of a batch as a module's forward, so that DistributedDataParallel sees
    the whole computation whatever the objective calls (``forward``, ``forward_pairs``)."""

    def __init__(self, model: LanguageModel, objective: Any, amp_dtype: torch.dtype | None):
        super().__init__()
        self.model, self.objective, self.amp_dtype = model, objective, amp_dtype

    def forward(self, batch: Any) -> torch.Tensor:
        return self.objective.loss(self.model, batch, self.amp_dtype)


def _share(batch: tuple, rank: int, world: int) -> tuple:
    """This process's rows of a batch (a tuple of tensors with the batch first)."""
    if world == 1:
        return batch
    n = batch[0].shape[0] // world
    rows = [t[rank * n:(rank + 1) * n] for t in batch]
    return tuple(rows) if type(batch) is tuple else type(batch)(*rows)


_STATE_FIELDS = {f.name for f in fields(TrainState)}

__all__ = [
    "Callback", "Checkpoint", "EarlyStopping", "MetricsLog", "ProgressBar", "ReduceLROnPlateau", "SamplePreview",
    "TrainConfig", "TrainState", "Trainer", "TrainingInterrupted", "autocast_dtype", "default_callbacks", "pair_loss",
]
