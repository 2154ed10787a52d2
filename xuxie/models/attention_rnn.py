"""textgenrnn's architecture: embedding → stacked LSTMs → skip connections → attention pooling → softmax.

textgenrnn concatenates the embedding and every LSTM layer's output at each position and pools
them with a learned attention-weighted average over a window of the last ``window`` tokens (40 by
default), then predicts the next token from that average.

textgenrnn re-reads the whole window from a zero state for every generated character. Here the
LSTMs carry their state, as in the char-rnn models, and only the attention pooling is windowed:
a position pools the features of itself and the ``window - 1`` positions before it. Every
position of a training window is a prediction (not only the last, as in textgenrnn), and decoding
keeps the last ``window - 1`` feature vectors and their attention scores, so one generated token
costs one LSTM step per layer plus a weighted average over ``window`` cached vectors —
O(window · features), no re-reading of the window. ``step()`` equals ``forward()`` over the whole
sequence (tested).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import XuxieError
from .base import LanguageModel, ModelConfig, register


@dataclass
class AttentionRNNConfig(ModelConfig):
    """textgenrnn's layout with measured sizes (README)."""

    vocab_size: int
    embed_dim: int = 100
    hidden_size: int = 256
    num_layers: int = 2
    window: int = 40
    dropout: float = 0.0
    bidirectional: bool = False  # textgenrnn's option: re-reads the window for every position

    derived_train_defaults: ClassVar[dict[str, str]] = {"seq_len": "its --window when bidirectional"}

    def adjust_train_config(self, train: Any, given: Collection[str], data: Any) -> None:
        if self.bidirectional and "seq_len" not in given:
            train.seq_len = self.window  # every position re-reads its window: keep training windows short

    def __post_init__(self) -> None:
        if min(self.embed_dim, self.hidden_size, self.num_layers) < 1:
            raise XuxieError("embedding size, hidden size and layers must be at least 1")
        if self.window < 1:
            raise XuxieError(f"the attention window must be at least 1 token, got {self.window}")
        if not 0.0 <= self.dropout < 1.0:
            raise XuxieError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def rnn_out(self) -> int:
        return self.hidden_size * (2 if self.bidirectional else 1)

    @property
    def features(self) -> int:
        return self.embed_dim + self.num_layers * self.rnn_out


class AttentionRNNLanguageModel(LanguageModel):
    config_class = AttentionRNNConfig
    carries_state = True

    def __init__(self, config: AttentionRNNConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.embed_dim)
        sizes = [c.embed_dim] + [c.rnn_out] * c.num_layers
        self.rnns = nn.ModuleList(nn.LSTM(sizes[i], c.hidden_size, batch_first=True, bidirectional=c.bidirectional)
                                  for i in range(c.num_layers))
        self.attention = nn.Parameter(torch.randn(c.features) * c.features ** -0.5)
        self.drop = nn.Dropout(c.dropout)
        # Beyond textgenrnn: the output layer also reads the current position's top LSTM output. The
        # attention scores are content-only (they cannot tell which position is the latest), so
        # without it the prediction of the next token blurs the most recent context (measured:
        # clearly slower learning on hacker_news_2000).
        self.head = nn.Linear(c.features + c.rnn_out, c.vocab_size)

    def _features(self, ids: torch.Tensor, lstm_states: list | None, stepwise: bool) -> tuple[torch.Tensor, list]:
        x = self.embed(ids)
        feats = [x]
        new_states = []
        for i, rnn in enumerate(self.rnns):
            st = lstm_states[i] if lstm_states is not None else None
            if stepwise:  # one token: the cell equations directly (nn.LSTM's oneDNN path is slow per token)
                if st is None:
                    z = x.new_zeros(x.shape[0], rnn.hidden_size)
                    st = (z, z)
                h, c = torch.lstm_cell(x[:, 0], st, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
                out, st = h[:, None], (h, c)
            else:
                packed = None if st is None else (st[0][None], st[1][None])
                out, (h, c) = rnn(self.drop(x) if i else x, packed)
                st = (h[0], c[0])
            new_states.append(st)
            feats.append(out)
            x = out
        return torch.cat(feats, -1), new_states

    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if self.config.bidirectional:
            return self._forward_windows(ids, state)
        B, T = ids.shape
        W = self.config.window
        lstm_states, prev_f, prev_s = (None, None, None) if state is None else state
        stepwise = T == 1 and not torch.is_grad_enabled()
        f, new_states = self._features(ids, lstm_states, stepwise)
        s = f @ self.attention  # (B, T) attention scores
        if prev_f is not None:
            f_all, s_all = torch.cat([prev_f, f], 1), torch.cat([prev_s, s], 1)
        else:
            f_all, s_all = f, s
        P = f_all.shape[1] - T  # cached positions before the new ones
        if T == 1:
            weights = torch.softmax(s_all[:, -W:], -1)[:, None, :]  # all cached positions are in the window
            pooled = weights @ f_all[:, -W:]
        else:
            q = torch.arange(P, P + T, device=ids.device)[:, None]
            k = torch.arange(P + T, device=ids.device)[None, :]
            allowed = (k <= q) & (q - k < W)
            scores = s_all[:, None, :].masked_fill(~allowed, float("-inf"))
            pooled = torch.softmax(scores, -1) @ f_all
        logits = self.head(self.drop(torch.cat([pooled, f[..., -self.config.rnn_out:]], -1)))
        keep = W - 1
        state = (new_states, f_all[:, -keep:] if keep else f_all[:, :0], s_all[:, -keep:] if keep else s_all[:, :0])
        return logits, state

    def _forward_windows(self, ids: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Bidirectional, as textgenrnn: each position reads its own window (the last ``window``
        tokens, <pad> before the start) from a zero state, forwards and backwards. Cost: a window
        per position, in training and in decoding; ``state`` is just the last ``window - 1`` tokens."""
        B, T = ids.shape
        W = self.config.window
        prev = ids.new_zeros(B, W - 1) if state is None else state  # <pad> = 0 before the text
        full = torch.cat([prev, ids], 1)
        windows = full.unfold(1, W, 1).reshape(B * T, W)  # position t's window ends at t
        x = self.embed(windows)
        feats = [x]
        for i, rnn in enumerate(self.rnns):
            x, _ = rnn(self.drop(x) if i else x)
            feats.append(x)
        f = torch.cat(feats, -1)  # (B*T, W, F)
        weights = torch.softmax(f @ self.attention, -1)[:, None, :]
        pooled = (weights @ f)[:, 0]
        logits = self.head(self.drop(torch.cat([pooled, x[:, -1]], -1))).view(B, T, -1)
        return logits, full[:, -(W - 1):] if W > 1 else full[:, :0]

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        logits, state = self(ids[:, None], state)
        return logits[:, 0], state

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        if state is None:
            return None
        if self.config.bidirectional:
            return state.index_select(0, index)
        lstm_states, f, s = state
        return ([(h.index_select(0, index), c.index_select(0, index)) for h, c in lstm_states],
                f.index_select(0, index), s.index_select(0, index))

    def batchable_state(self, state: Any) -> Any:
        """Cached features padded to ``window - 1`` positions (zeros, with score -inf: no weight)."""
        if self.config.bidirectional:
            return state  # already the last window - 1 tokens, <pad> before the text
        lstm_states, f, s = state
        missing = self.config.window - 1 - f.shape[1]
        if missing > 0:
            f = torch.cat([f.new_zeros(f.shape[0], missing, f.shape[2]), f], 1)
            s = torch.cat([s.new_full((s.shape[0], missing), float("-inf")), s], 1)
        return lstm_states, f, s

    def join_states(self, states: list[Any]) -> Any:
        if self.config.bidirectional:
            return torch.cat(states, 0)
        layers = [(torch.cat([h for h, _ in per], 0), torch.cat([c for _, c in per], 0)) for per in zip(*(st[0] for st in states))]
        return layers, torch.cat([st[1] for st in states], 0), torch.cat([st[2] for st in states], 0)

    def detach_state(self, state: Any) -> Any:
        if state is None or self.config.bidirectional:
            return state
        lstm_states, f, s = state
        return ([(h.detach(), c.detach()) for h, c in lstm_states], f.detach(), s.detach())


register("attention-rnn", AttentionRNNLanguageModel)
