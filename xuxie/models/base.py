"""The interface every model family implements, and the registry from ``arch`` name to class."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import XuxieError


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

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


#: arch name -> (model class, fixed config fields)
REGISTRY: dict[str, tuple[type[LanguageModel], dict[str, Any]]] = {}


def register(name: str, cls: type[LanguageModel], **fixed: Any) -> None:
    REGISTRY[name] = (cls, fixed)


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
        raise XuxieError(f"architecture '{arch}' has no option(s) {', '.join(sorted(unknown))}; it takes: {', '.join(sorted(fields - {'vocab_size'} - set(fixed)))}")
    opts = {k: v for k, v in options.items() if v is not None}
    config = cls.config_class(vocab_size=vocab_size, **{**opts, **fixed})
    return cls(config)


def model_from_config(arch: str, config: dict[str, Any]) -> LanguageModel:
    cls, _ = _lookup(arch)
    try:
        return cls(cls.config_class(**config))
    except TypeError as e:
        raise XuxieError(f"model config does not fit architecture '{arch}' ({e}); the model directory is damaged") from None
