"""char-rnn style recurrent language models: embedding → RNN/LSTM/GRU stack → softmax.

Uses PyTorch's fused multi-layer recurrent kernels (``nn.LSTM`` etc.); ``step`` carries the
hidden state, so generating N tokens costs N single-token steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import XuxieError
from .base import LanguageModel, ModelConfig, register
from .heads import ADAPTIVE_DROPOUT, AdaptiveHead, auto_cutoffs, check_cutoffs

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class RNNConfig(ModelConfig):
    """char-rnn sizes (chosen by measurement on 2 CPU cores, README); trains with TrainConfig's defaults."""

    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 512
    num_layers: int = 1
    embed_dim: int | None = None  # None: same as hidden_size
    dropout: float | None = None  # None: ADAPTIVE_DROPOUT with the adaptive softmax, else 0
    tie_weights: bool = False
    # Adaptive softmax cluster boundaries (frequency ranks); [] is the full softmax; None: chosen
    # from the vocabulary size (heads.auto_cutoffs), the full softmax for a tied output layer.
    softmax_cutoffs: list[int] | None = None

    saved_before: ClassVar[dict[str, Any]] = {"softmax_cutoffs": []}

    def __post_init__(self) -> None:
        if self.cell not in _CELLS:
            raise XuxieError(f"unknown recurrent cell '{self.cell}'; choose one of: {', '.join(_CELLS)}")
        if self.hidden_size < 1 or self.num_layers < 1 or (self.embed_dim is not None and self.embed_dim < 1):
            raise XuxieError("hidden size, layers and embedding size must be at least 1")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise XuxieError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.softmax_cutoffs is not None:
            self.softmax_cutoffs = list(self.softmax_cutoffs)
            check_cutoffs(self.softmax_cutoffs, self.vocab_size, self.hidden_size)
            if self.tie_weights and self.softmax_cutoffs:
                raise XuxieError("a tied output layer is a full softmax: give no softmax cutoffs with tie_weights")

    def resolve(self) -> None:
        """Settle the automatic fields for this vocabulary (saved so: a later rule cannot change a model).
        A vocabulary large enough for the adaptive softmax also gets dropout: its embedding and output
        layer hold most of the weights and learn the rare tokens by heart, and the adaptive softmax's
        speed reaches that point within minutes (README: *Large vocabularies*)."""
        if self.softmax_cutoffs is None:
            self.softmax_cutoffs = [] if self.tie_weights else auto_cutoffs(self.vocab_size, self.hidden_size)
        if self.dropout is None:
            self.dropout = ADAPTIVE_DROPOUT if self.softmax_cutoffs else 0.0


class RNNLanguageModel(LanguageModel):
    config_class = RNNConfig
    carries_state = True

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        c = config
        c.resolve()
        emb = c.embed_dim or c.hidden_size
        self.embed = nn.Embedding(c.vocab_size, emb)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = _CELLS[c.cell](emb, c.hidden_size, c.num_layers, batch_first=True,
                                  dropout=c.dropout if c.num_layers > 1 else 0.0)
        # Weight tying needs the output layer to read vectors of the embedding's size.
        self.proj = nn.Linear(c.hidden_size, emb, bias=False) if c.tie_weights and emb != c.hidden_size else None
        head_in = emb if c.tie_weights else c.hidden_size
        self.head = AdaptiveHead(head_in, c.vocab_size, c.softmax_cutoffs) if c.softmax_cutoffs else nn.Linear(head_in, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embed.weight
        self._init()

    def _init(self) -> None:
        # PyTorch's own initialisation learns fastest here (measured: a scaled-down embedding and
        # forget-gate bias 1 were clearly slower in the first minutes). A tied embedding is also the
        # output layer, so it is scaled down to keep the first logits small.
        if self.config.tie_weights:
            nn.init.normal_(self.embed.weight, std=self.embed.weight.shape[1] ** -0.5)

    @property
    def adaptive(self) -> bool:
        return isinstance(self.head, AdaptiveHead)

    @property
    def uses_every_parameter(self) -> bool:
        return not self.adaptive

    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        hidden, state = self._hidden(ids, state)
        return self._logits(hidden), state

    def token_losses(self, ids: torch.Tensor, targets: torch.Tensor, state: Any = None,
                     ignore_index: int = -100) -> tuple[torch.Tensor, Any]:
        if not self.adaptive:
            return super().token_losses(ids, targets, state, ignore_index)
        hidden, state = self._hidden(ids, state)
        return self.head.token_losses(hidden, targets, ignore_index), state

    def learn_token_frequencies(self, train_ids: np.ndarray) -> None:
        if self.adaptive:
            self.head.learn_ranks(train_ids)

    def _hidden(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """What the output layer reads, and the new state."""
        x = self.drop(self.embed(ids))
        out, state = self.rnn(x, state)
        out = self.drop(out)
        return (self.proj(out) if self.proj is not None else out), state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits (log-probabilities, for the adaptive softmax) over the vocabulary."""
        return self.head.log_probs(hidden) if self.adaptive else self.head(hidden)

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if torch.is_grad_enabled() or (self.training and self.config.dropout > 0):
            logits, state = self(ids[:, None], state)
            return logits[:, 0], state
        return self._fast_step(ids, state)

    # -- decoding fast path -------------------------------------------------------------------
    # One token through nn.LSTM costs far more than its arithmetic: oneDNN re-lays-out the
    # weights on every call (~15x slower than the math for one token, measured) and the weights are
    # read from memory each step. So decoding runs the cell equations directly, with the first
    # layer's input projection precomputed for the whole vocabulary (``embedding @ W_ih^T + bias``):
    # a step then reads one row of that table plus ``W_hh`` — half the bytes of the full layer.

    def _input_table(self) -> torch.Tensor:
        rnn, emb = self.rnn, self.embed.weight
        w, b_ih, b_hh = rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.bias_hh_l0
        key = (w._version, b_ih._version, b_hh._version, emb._version, w.data_ptr(), emb.data_ptr(), w.dtype)
        if getattr(self, "_table_key", None) != key:
            with torch.no_grad():
                bias = b_ih if self.config.cell == "gru" else b_ih + b_hh  # GRU keeps b_hh inside r*(.)
                self._table = torch.addmm(bias, emb, w.t())
            self._table_key = key
        return self._table

    def _recurrent_weights(self, layer: int) -> torch.Tensor:
        """``W_hh`` of ``layer`` as one (hidden, hidden) block per gate, transposed and contiguous."""
        w = getattr(self.rnn, f"weight_hh_l{layer}")
        cache = self.__dict__.setdefault("_hh_blocks", {})
        key = (w._version, w.data_ptr(), w.dtype)
        if cache.get(layer, (None,))[0] != key:
            gates = w.shape[0] // w.shape[1]
            cache[layer] = (key, w.detach().view(gates, w.shape[1], w.shape[1]).transpose(1, 2).contiguous())
        return cache[layer][1]

    def _recurrent(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """``h @ W_hh^T`` (batch, gates × hidden). On several threads as one batched product of a
        block per gate: MKL runs a few rows' single product on one thread, the batched one spreads
        (512 units, 1 row: 31 µs on 2 threads vs 57; 4 rows: 135 vs 182); on one thread the single
        product is the faster (57 vs 61; 180 vs 233; measured, AMD EPYC Zen 4)."""
        w = getattr(self.rnn, f"weight_hh_l{layer}")
        if torch.get_num_threads() == 1:
            return h @ w.t()
        blocks = self._recurrent_weights(layer)
        out = torch.bmm(h.unsqueeze(0).expand(blocks.shape[0], -1, -1), blocks)  # (gates, batch, hidden)
        return out.transpose(0, 1).reshape(h.shape[0], -1)

    def _fast_step(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        rnn, cell = self.rnn, self.config.cell
        L, H, B = rnn.num_layers, rnn.hidden_size, ids.shape[0]
        if state is None:
            zeros = torch.zeros(L, B, H, device=ids.device, dtype=self._input_table().dtype)
            state = (zeros, zeros) if cell == "lstm" else zeros
        hs, cs = (state if cell == "lstm" else (state, None))
        new_h, new_c = [], []
        x = None
        for layer in range(L):
            h = hs[layer]
            b_hh = getattr(rnn, f"bias_hh_l{layer}")
            if layer == 0:
                gx = self._input_table()[ids]
            else:
                gx = torch.addmm(getattr(rnn, f"bias_ih_l{layer}"), x, getattr(rnn, f"weight_ih_l{layer}").t())
                if cell != "gru":
                    gx = gx + b_hh
            gh = self._recurrent(layer, h)
            if cell == "lstm":
                gates = gx + gh
                s = gates.sigmoid()
                i, f, o = s[:, :H], s[:, H:2 * H], s[:, 3 * H:]
                c = torch.addcmul(f * cs[layer], i, gates[:, 2 * H:3 * H].tanh())
                h = o * c.tanh()
                new_c.append(c)
            elif cell == "gru":
                gh = gh + b_hh
                rz = (gx[:, :2 * H] + gh[:, :2 * H]).sigmoid()
                r, z = rz[:, :H], rz[:, H:]
                n = torch.addcmul(gx[:, 2 * H:], r, gh[:, 2 * H:]).tanh()
                h = torch.addcmul(n, z, h - n)
            else:
                h = (gx + gh).tanh()
            new_h.append(h)
            x = h
        logits = self._logits(self.proj(x) if self.proj is not None else x)
        hn = torch.stack(new_h)
        return logits, ((hn, torch.stack(new_c)) if cell == "lstm" else hn)

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.index_select(1, index) for s in state)
        return state.index_select(1, index)

    def join_states(self, states: list[Any]) -> Any:
        if isinstance(states[0], tuple):  # LSTM (h, c), each (layers, batch, hidden)
            return tuple(torch.cat(parts, 1) for parts in zip(*states))
        return torch.cat(states, 1)

    def detach_state(self, state: Any) -> Any:
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(s.detach() for s in state)
        return state.detach()


for _name in _CELLS:
    register(_name, RNNLanguageModel, cell=_name)
