"""The interface every model family implements, the registry from ``arch`` name to class, and the
one home of each family's defaults: its config dataclass (a :class:`ModelConfig`) declares the model
defaults as its fields and the training defaults beside them."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XuxieError


class ModelConfig:
    """Base of every family's config dataclass. The dataclass fields are the family's model
    defaults; these class attributes and :meth:`adjust_train_config` are its training defaults."""

    #: :class:`~xuxie.training.TrainConfig` fields whose default differs for this family (measured; README)
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: the training defaults :meth:`adjust_train_config` derives, in words (for ``--help`` and README)
    derived_train_defaults: ClassVar[dict[str, str]] = {}
    #: fields added after models were saved, with the value a saved config without them means (the
    #: behaviour before the field existed; the field's default is what new models get)
    saved_before: ClassVar[dict[str, Any]] = {}

    def adjust_train_config(self, train: Any, given: Collection[str], data: Any) -> None:
        """Set the training settings the user did not give (names in ``given``) that follow from
        this model or from its encoded training ``data``; check those given against the model.
        Called once, for a new run (a resumed run keeps the settings it began with)."""


class LanguageModel(nn.Module):
    """A next-token model.

    ``forward(ids, state=None) -> (logits, state)``
        ``ids`` is ``(batch, time)``; ``logits`` is ``(batch, time, vocab)``. ``state`` is
        whatever the model carries between calls (an RNN's hidden state, a KV cache) and may be
        passed back in to continue the same sequences.
    ``step(ids, state) -> (logits, state)``
        One token per sequence: ``ids`` is ``(batch,)``, ``logits`` is ``(batch, vocab)``. This is
        what decoding drives; generating N tokens costs N steps.
    ``prefill(ids) -> (logits, state)``
        ``forward`` over a prompt that also returns the state decoding continues from.
    ``reorder_state(state, index) -> state``
        Selects/duplicates sequences of a state along the batch (beam search, n samples).
    """

    config_class: ClassVar[type]
    #: True when evaluation may carry ``state`` across consecutive windows (RNNs).
    carries_state: ClassVar[bool] = False
    #: True for encoder–decoder models: the prompt is the source to answer, not text to continue.
    is_encoder_decoder: ClassVar[bool] = False

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        logits, state = self(ids[:, None], state)
        return logits[:, -1], state

    def token_losses(self, ids: torch.Tensor, targets: torch.Tensor, state: Any = None,
                     ignore_index: int = -100) -> tuple[torch.Tensor, Any]:
        """The cross-entropy of each of ``targets`` (shaped like it; 0 at ``ignore_index``) after
        ``ids``, and the state: what training and evaluation read (an output layer that need not
        compute every logit, like the adaptive softmax, overrides it)."""
        logits, state = self(ids, state)
        losses = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                 ignore_index=ignore_index, reduction="none")
        return losses.view(targets.shape), state

    @property
    def uses_every_parameter(self) -> bool:
        """False when a training step may leave some parameters out (an adaptive softmax's tail
        that no target of the batch falls in): DistributedDataParallel must then look for them."""
        return True

    def learn_token_frequencies(self, train_ids: Any) -> None:
        """Called once before a new model trains, with its training ids (an output layer that
        orders tokens by frequency learns it here)."""

    def prefill(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """``forward`` over a prompt, returning a state ``step`` can continue (a KV cache is only
        built when asked for, so training and evaluation do not pay for it)."""
        return self(ids, None)

    def continuation_logits(self, prompt: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Logits (N, vocab) predicting each token of ``new`` (1, N) after ``prompt`` (1, P)."""
        ids = torch.cat([prompt, new], 1)
        logits, _ = self(ids[:, :-1], None)
        return logits[0, prompt.shape[1] - 1:]

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        raise NotImplementedError

    def detach_state(self, state: Any) -> Any:
        return state

    # -- continuous batching (the server): rows of different requests stepped together ----------
    def batchable_state(self, state: Any) -> Any:
        """``state`` (one request's rows, from ``prefill``) in the form continuous batching keeps:
        each row padded to the model's fixed longest history and carrying its own position, so rows
        of requests that started at different times can be joined and stepped as one batch — and a
        row's arithmetic has the same shapes whatever else is in the batch (batch invariance)."""
        return state

    def join_states(self, states: list[Any]) -> Any:
        """One state holding the rows of several :meth:`batchable_state` states, in order."""
        raise NotImplementedError

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


#: arch name -> (model class, fixed config fields)
REGISTRY: dict[str, tuple[type[LanguageModel], dict[str, Any]]] = {}


def register(name: str, cls: type[LanguageModel], **fixed: Any) -> None:
    REGISTRY[name] = (cls, fixed)


def config_class(arch: str) -> type[ModelConfig]:
    return _lookup(arch)[0].config_class


def train_defaults(arch: str) -> dict[str, Any]:
    """The training defaults ``arch`` declares; none for an unknown name (building its model says so)."""
    return dict(REGISTRY[arch][0].config_class.train_defaults) if arch in REGISTRY else {}


def is_encoder_decoder(arch: str) -> bool:
    """Whether ``arch`` answers an input (trains on source→target pairs); False for an unknown name."""
    return arch in REGISTRY and REGISTRY[arch][0].is_encoder_decoder


def default_config(arch: str) -> ModelConfig:
    """``arch``'s config with every default filled in (sizes from a preset too), for ``--help`` and README."""
    cls, fixed = _lookup(arch)
    return cls.config_class(vocab_size=1, **fixed)


def declared_defaults(arch: str) -> dict[str, Any]:
    """The model options ``arch``'s config declares a value for (``None`` defaults, which the
    config derives, are left out), without the vocabulary size and the fields fixed by the name."""
    cls, fixed = _lookup(arch)
    out = {}
    for f in dataclasses.fields(cls.config_class):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if f.name != "vocab_size" and f.name not in fixed and value is not None and value is not dataclasses.MISSING:
            out[f.name] = value
    return out


def families() -> dict[type[ModelConfig], list[str]]:
    """The architecture names of each family (config class), in registration order."""
    out: dict[type[ModelConfig], list[str]] = {}
    for name, (cls, _) in REGISTRY.items():
        out.setdefault(cls.config_class, []).append(name)
    return out


def config_fields(arch: str) -> set[str]:
    cls, _ = _lookup(arch)
    return {f.name for f in dataclasses.fields(cls.config_class)}


def _lookup(arch: str) -> tuple[type[LanguageModel], dict[str, Any]]:
    if arch not in REGISTRY:
        raise XuxieError(f"unknown architecture '{arch}'; choose one of: {', '.join(REGISTRY)}")
    return REGISTRY[arch]


def build_model(arch: str, vocab_size: int, **options: Any) -> LanguageModel:
    """Build a model of ``arch``; ``options`` are fields of its config (``None`` = default)."""
    cls, fixed = _lookup(arch)
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = set(options) - fields
    if unknown:
        raise XuxieError(f"architecture '{arch}' has no option(s) {', '.join(sorted(unknown))}; it takes: "
                         f"{', '.join(sorted(fields - {'vocab_size'} - set(fixed)))}")
    opts = {k: v for k, v in options.items() if v is not None}
    config = cls.config_class(vocab_size=vocab_size, **{**opts, **fixed})
    return cls(config)


def model_from_config(arch: str, config: dict[str, Any]) -> LanguageModel:
    cls, _ = _lookup(arch)
    try:
        return cls(cls.config_class(**{**cls.config_class.saved_before, **config}))
    except TypeError as e:
        raise XuxieError(f"model config does not fit architecture '{arch}' ({e}); the model directory is damaged") from None
