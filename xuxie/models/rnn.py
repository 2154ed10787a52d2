"""char-rnn style recurrent language models: embedding → RNN/LSTM/GRU stack → softmax.

Uses PyTorch's fused multi-layer recurrent kernels (``nn.LSTM`` etc.); ``step`` carries the
hidden state, so generating N tokens costs N single-token steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import XuxieError
from .base import LanguageModel, register

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class RNNConfig:
    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 512
    num_layers: int = 1
    embed_dim: int | None = None  # None: same as hidden_size
    dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if self.cell not in _CELLS:
            raise XuxieError(f"unknown recurrent cell '{self.cell}'; choose one of: {', '.join(_CELLS)}")
        if self.hidden_size < 1 or self.num_layers < 1 or (self.embed_dim is not None and self.embed_dim < 1):
            raise XuxieError("hidden size, layers and embedding size must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise XuxieError(f"dropout must be in [0, 1), got {self.dropout}")


class RNNLanguageModel(LanguageModel):
    config_class = RNNConfig
    carries_state = True

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        c = config
        emb = c.embed_dim or c.hidden_size
        self.embed = nn.Embedding(c.vocab_size, emb)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = _CELLS[c.cell](emb, c.hidden_size, c.num_layers, batch_first=True,
                                  dropout=c.dropout if c.num_layers > 1 else 0.0)
        # Weight tying needs the output layer to read vectors of the embedding's size.
        self.proj = nn.Linear(c.hidden_size, emb, bias=False) if c.tie_weights and emb != c.hidden_size else None
        self.head = nn.Linear(emb if c.tie_weights else c.hidden_size, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embed.weight
        self._init()

    def _init(self) -> None:
        # PyTorch's own initialisation learns fastest here (measured: a scaled-down embedding and
        # forget-gate bias 1 were clearly slower in the first minutes). A tied embedding is also the
        # output layer, so it is scaled down to keep the first logits small.
        if self.config.tie_weights:
            nn.init.normal_(self.embed.weight, std=self.embed.weight.shape[1] ** -0.5)

    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        x = self.drop(self.embed(ids))
        out, state = self.rnn(x, state)
        out = self.drop(out)
        if self.proj is not None:
            out = self.proj(out)
        return self.head(out), state

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        logits, state = self(ids[:, None], state)
        return logits[:, 0], state

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def detach_state(self, state: Any) -> Any:
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.detach() for s in state)
        return state.detach()


for _name in _CELLS:
    register(_name, RNNLanguageModel, cell=_name)
