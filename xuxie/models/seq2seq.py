"""Seq2Seq: an RNN encoder and an attentional RNN decoder (Bahdanau / Luong), one shared vocabulary.

Encoder: embedding → LSTM/GRU stack, bidirectional by default (each direction has half the
hidden size, so the memory and the decoder have ``hidden_size`` features and the final states of
both directions, concatenated, start the decoder — no bridge layer needed).

Decoder (Luong et al. 2015, "global attention", as OpenNMT's RNN decoder): at step ``t``

    s_t   = RNN(emb(y_{t-1}), s_{t-1})                 (input feeding, optional: [emb(y_{t-1}); h̃_{t-1}])
    a_t   = softmax(score(s_t, memory))                 (padding masked out)
    c_t   = a_t · memory
    h̃_t  = tanh(W_c [c_t; s_t])
    p(y_t) = softmax(W_out h̃_t)

with ``score`` one of ``dot`` (s·m), ``general`` (s·W m, Luong) or ``additive``
(v·tanh(W_q s + W_k m), Bahdanau). Keys (W m) are computed once per source, not per step.

Decoding goes through the shared decoding module: ``prefill(source_ids)`` encodes the source
and runs the decoder's first step from ``<bos>``; ``step`` carries the decoder state together
with the encoder memory, so N generated tokens cost N decoder steps. Without input feeding (the
default), with full teacher forcing and dot/general scores, training runs the decoder RNN and the
attention over the whole target at once (1.9× faster per step than input feeding, measured;
README); otherwise the decoder runs step by step and its attention's gradients for the keys and
memory are summed over all steps at once (:class:`_StepAttention`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import XuxieError
from ..tokenizers import BOS
from .base import LanguageModel, ModelConfig, register

ATTENTIONS = ("general", "dot", "additive")
#: a batch holds about this many target tokens when --batch-size is not given (like fairseq's
#: --max-tokens): measured on 2 cores, 红楼梦 paragraphs (≈110 tokens) learnt faster per minute with
#: 16 pairs a batch than with 64 (perplexity 200 vs 450 after 2 minutes), while 20-token copy-task
#: pairs did best with 64.
PAIR_BATCH_TOKENS = 2048
_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}
CELLS = tuple(_CELLS)  # what --cell takes


@dataclass
class Seq2SeqConfig(ModelConfig):
    """Measured sizes (README); pairs per batch follow from the pairs' length."""

    vocab_size: int
    cell: str = "lstm"
    hidden_size: int = 256
    num_layers: int = 1
    embed_dim: int = 128
    bidirectional: bool = True
    attention: str = "general"
    # Off: on 红楼梦 paragraphs it learnt 2.3× lower perplexity in 5 minutes (112 vs 259; 2.4× the
    # steps, and lower at equal steps too) and wrote better answers (README).
    input_feeding: bool = False
    dropout: float = 0.1
    teacher_forcing: float = 1.0  # share of training steps fed the true previous token
    max_source_len: int = 256  # tokens of input the model reads (longer inputs: an error, or truncate)
    max_target_len: int = 256  # tokens it writes per answer (including <eos>)

    # bf16 autocast measured 1.4× faster for a 256-wide seq2seq on 红楼梦 paragraphs but slower for
    # narrow models on short pairs (the decoder runs step by step, small ops): fp32 unless asked.
    train_defaults: ClassVar[dict[str, Any]] = {"precision": "fp32"}
    derived_train_defaults: ClassVar[dict[str, str]] = {"batch_size": f"pairs holding about {PAIR_BATCH_TOKENS} target tokens (8 to 64)"}

    def adjust_train_config(self, train: Any, given: Collection[str], data: Any) -> None:
        if "batch_size" not in given:
            per_pair = data.target_tokens / len(data)
            train.batch_size = max(8, min(64, int(PAIR_BATCH_TOKENS / per_pair) // 8 * 8))

    def __post_init__(self) -> None:
        if self.cell not in _CELLS:
            raise XuxieError(f"unknown seq2seq cell '{self.cell}'; choose one of: {', '.join(_CELLS)}")
        if self.attention not in ATTENTIONS:
            raise XuxieError(f"unknown attention '{self.attention}'; choose one of: {', '.join(ATTENTIONS)}")
        if self.hidden_size < 2 or self.num_layers < 1 or self.embed_dim < 1:
            raise XuxieError("hidden size must be at least 2, layers and embedding size at least 1")
        if self.bidirectional and self.hidden_size % 2:
            raise XuxieError("a bidirectional encoder splits --hidden-size between its two directions; give an even size (got "
                             f"{self.hidden_size})")
        if not 0.0 <= self.dropout < 1.0:
            raise XuxieError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise XuxieError(f"teacher forcing ratio must be in [0, 1], got {self.teacher_forcing}")
        if self.max_source_len < 1 or self.max_target_len < 1:
            raise XuxieError("--max-source-len and --max-target-len must be at least 1")


@dataclass
class Seq2SeqState:
    """What decoding carries: the decoder's per-layer state, the fed-back attentional vector, and
    the encoder's memory (with precomputed attention keys and the padding mask)."""

    h: list[torch.Tensor]  # per layer (batch, hidden)
    c: list[torch.Tensor] | None  # LSTM cell states, per layer
    feed: torch.Tensor  # (batch, hidden): h̃ of the previous step
    memory: torch.Tensor  # (batch, source, hidden)
    keys: torch.Tensor  # (batch, source, hidden)
    mask: torch.Tensor  # (batch, source) True at real tokens
    attention: torch.Tensor | None = None  # (batch, source): weights of the last step

    def select(self, index: torch.Tensor) -> Seq2SeqState:
        pick = lambda t: t.index_select(0, index)  # noqa: E731
        return Seq2SeqState([pick(h) for h in self.h], None if self.c is None else [pick(c) for c in self.c],
                            pick(self.feed), pick(self.memory), pick(self.keys), pick(self.mask),
                            None if self.attention is None else pick(self.attention))


def _pad_source(t: torch.Tensor, length: int, value: float | bool) -> torch.Tensor:
    """``t`` (batch, source, ...) padded with ``value`` to ``length`` source positions."""
    missing = length - t.shape[1]
    if missing <= 0:
        return t
    return torch.cat([t, t.new_full((t.shape[0], missing, *t.shape[2:]), value)], 1)


class _StepAttention:
    """Dot-product attention (``dot``/``general`` scores) for a decoder that runs step by step
    (input feeding, scheduled sampling) whose backward pass sums the gradient for the keys and
    the memory over all steps in two batched products at the end, instead of autograd's two
    (batch, source, hidden) outer products and adds per step — most of a training step's time.

    Call it like :meth:`Seq2SeqModel._attend`, once per step. Each step's backward computes only
    the query's gradient and keeps the step's score and context gradients; the keys and memory
    reach the steps through :class:`_MemoryGradients`, whose backward autograd runs after every
    step's (they all use its outputs) and does the batched products.
    """

    def __init__(self, st: Seq2SeqState, steps: int):
        B, S, H = st.keys.shape
        self.keys, self.memory, self.mask = st.keys.detach(), st.memory.detach(), st.mask
        self.queries = self.keys.new_zeros(B, steps, H)
        self.weights = self.memory.new_zeros(B, steps, S)
        self.score_grads = self.keys.new_zeros(B, steps, S)
        self.context_grads = self.memory.new_zeros(B, steps, H)
        self.step = 0
        self.tracked = _MemoryGradients.apply(st.keys, st.memory, self)

    def __call__(self, query: torch.Tensor, st: Seq2SeqState) -> tuple[torch.Tensor, torch.Tensor]:
        context, weights = _AttentionStep.apply(query, *self.tracked, self, self.step)
        self.step += 1
        return context, weights


class _MemoryGradients(torch.autograd.Function):
    @staticmethod
    def forward(ctx, keys, memory, steps: _StepAttention):
        ctx.steps = steps
        return keys.view_as(keys), memory.view_as(memory)

    @staticmethod
    def backward(ctx, keys_grad, memory_grad):
        a = ctx.steps
        return (keys_grad + torch.bmm(a.score_grads.transpose(1, 2), a.queries),
                memory_grad + torch.bmm(a.weights.transpose(1, 2), a.context_grads), None)


class _AttentionStep(torch.autograd.Function):
    @staticmethod
    def forward(ctx, query, keys, memory, steps: _StepAttention, t: int):
        q = query.to(steps.keys.dtype)
        scores = torch.bmm(q[:, None], steps.keys.transpose(1, 2))[:, 0].float()
        weights = scores.masked_fill(~steps.mask, float("-inf")).softmax(-1)
        context = torch.bmm(weights.to(steps.memory.dtype)[:, None], steps.memory)[:, 0]
        steps.queries[:, t] = q
        steps.weights[:, t] = weights
        ctx.steps, ctx.t = steps, t
        ctx.set_materialize_grads(False)
        return context, weights

    @staticmethod
    def backward(ctx, context_grad, weights_grad):
        a, t = ctx.steps, ctx.t
        w = a.weights[:, t].float()
        dw = torch.zeros_like(w) if weights_grad is None else weights_grad.float()
        if context_grad is None:
            context_grad = a.context_grads.new_zeros(a.context_grads[:, t].shape)
        dw = dw + torch.bmm(context_grad.to(a.memory.dtype)[:, None], a.memory.transpose(1, 2))[:, 0].float()
        score_grad = w * (dw - (dw * w).sum(-1, keepdim=True))  # softmax's backward; 0 where masked
        a.score_grads[:, t] = score_grad
        a.context_grads[:, t] = context_grad
        query_grad = torch.bmm(score_grad.to(a.keys.dtype)[:, None], a.keys)[:, 0]
        return query_grad, None, None, None, None


class Seq2SeqModel(LanguageModel):
    config_class = Seq2SeqConfig
    is_encoder_decoder: ClassVar[bool] = True
    #: False: every step's attention backward through autograd (the reference the tests compare with)
    batched_attention_backward: ClassVar[bool] = True

    def __init__(self, config: Seq2SeqConfig):
        super().__init__(config)
        c = config
        H, E = c.hidden_size, c.embed_dim
        self.embed = nn.Embedding(c.vocab_size, E)  # one vocabulary for source and target
        self.drop = nn.Dropout(c.dropout)
        enc_hidden = H // 2 if c.bidirectional else H
        self.encoder = _CELLS[c.cell](E, enc_hidden, c.num_layers, batch_first=True, bidirectional=c.bidirectional,
                                      dropout=c.dropout if c.num_layers > 1 else 0.0)
        self.decoder = _CELLS[c.cell](E + (H if c.input_feeding else 0), H, c.num_layers, batch_first=True,
                                      dropout=c.dropout if c.num_layers > 1 else 0.0)
        if c.attention == "general":
            self.key_proj = nn.Linear(H, H, bias=False)
        elif c.attention == "additive":
            self.key_proj = nn.Linear(H, H, bias=True)
            self.query_proj = nn.Linear(H, H, bias=False)
            self.score_v = nn.Linear(H, 1, bias=False)
        self.combine = nn.Linear(2 * H, H, bias=False)
        self.head = nn.Linear(H, c.vocab_size)

    # -- encoder ------------------------------------------------------------------------------
    def encode(self, src: torch.Tensor, src_len: torch.Tensor | None = None) -> Seq2SeqState:
        """Encode ``src`` (batch, source) with true lengths ``src_len`` (None: no padding)."""
        c = self.config
        B, S = src.shape
        x = self.drop(self.embed(src))
        if src_len is not None and bool((src_len < S).any()):
            packed = pack_padded_sequence(x, src_len.cpu(), batch_first=True, enforce_sorted=False)
            out, final = self.encoder(packed)
            memory, _ = pad_packed_sequence(out, batch_first=True, total_length=S)
            mask = torch.arange(S, device=src.device)[None, :] < src_len.to(src.device)[:, None]
        else:
            memory, final = self.encoder(x)
            mask = torch.ones(B, S, dtype=torch.bool, device=src.device)
        h_n, c_n = final if c.cell == "lstm" else (final, None)

        def to_decoder(t: torch.Tensor) -> list[torch.Tensor]:
            if c.bidirectional:  # (layers*2, B, H/2) -> per layer [forward; backward]
                t = t.view(c.num_layers, 2, B, -1).transpose(1, 2).reshape(c.num_layers, B, -1)
            return list(t.unbind(0))

        memory = self.drop(memory)
        if c.attention == "dot":
            keys = memory
        else:
            keys = self.key_proj(memory)
        feed = memory.new_zeros(B, c.hidden_size)
        return Seq2SeqState(to_decoder(h_n), None if c_n is None else to_decoder(c_n), feed, memory, keys, mask)

    # -- attention ----------------------------------------------------------------------------
    def _attend(self, query: torch.Tensor, st: Seq2SeqState) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, H) or (B, T, H) -> (context like query, weights (B[, T], S))."""
        single = query.dim() == 2
        q = query[:, None] if single else query
        if self.config.attention == "additive":
            e = torch.tanh(st.keys[:, None] + self.query_proj(q)[:, :, None])  # (B, T, S, H)
            scores = self.score_v(e).squeeze(-1)
        else:
            scores = torch.bmm(q, st.keys.transpose(1, 2))  # (B, T, S)
        scores = scores.masked_fill(~st.mask[:, None], float("-inf"))
        weights = scores.softmax(-1)
        context = torch.bmm(weights.to(st.memory.dtype), st.memory)
        if single:
            return context[:, 0], weights[:, 0]
        return context, weights

    def _attentional(self, context: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.tanh(self.combine(torch.cat([context, query], -1))))

    # -- decoder ------------------------------------------------------------------------------
    def _cell(self, layer: int, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None):
        d = self.decoder
        w_ih, w_hh = getattr(d, f"weight_ih_l{layer}"), getattr(d, f"weight_hh_l{layer}")
        b_ih, b_hh = getattr(d, f"bias_ih_l{layer}"), getattr(d, f"bias_hh_l{layer}")
        if c is None:
            return torch.gru_cell(x, h, w_ih, w_hh, b_ih, b_hh), None
        return torch.lstm_cell(x, (h, c), w_ih, w_hh, b_ih, b_hh)

    def _decode_step(self, emb: torch.Tensor, st: Seq2SeqState, attend=None) -> tuple[torch.Tensor, Seq2SeqState]:
        """One decoder step from token embeddings (B, E): returns h̃ (B, H) and the new state.
        ``attend`` (query, state) -> (context, weights): :meth:`_attend` unless given."""
        x = torch.cat([emb, st.feed.to(emb.dtype)], -1) if self.config.input_feeding else emb
        x = self.drop(x)
        hs, cs = [], [] if st.c is not None else None
        for layer in range(self.config.num_layers):
            h, c = self._cell(layer, x, st.h[layer], None if st.c is None else st.c[layer])
            hs.append(h)
            if cs is not None:
                cs.append(c)
            x = self.drop(h) if layer + 1 < self.config.num_layers else h
        context, weights = (attend or self._attend)(x, st)
        out = self._attentional(context, x)
        return out, Seq2SeqState(hs, cs, out, st.memory, st.keys, st.mask, weights)

    def decode(self, tgt_in: torch.Tensor, st: Seq2SeqState, return_attention: bool = False,
               teacher_forcing: float | None = None) -> tuple[torch.Tensor, Seq2SeqState, torch.Tensor | None]:
        """Teacher-forced decoding of ``tgt_in`` (B, T) from ``st``: logits (B, T, V), the final
        state and, when asked, the attention weights (B, T, S).

        ``teacher_forcing`` < 1 (training only): each sequence gets its own previous prediction
        instead of the true token with probability 1 - ratio (scheduled sampling).
        """
        c = self.config
        tf = c.teacher_forcing if teacher_forcing is None else teacher_forcing
        sampled = self.training and tf < 1.0
        if not c.input_feeding and not sampled and c.attention != "additive":
            # Everything but attention is parallel over time: the decoder RNN runs fused.
            h0 = torch.stack(st.h)
            init = (h0, torch.stack(st.c)) if st.c is not None else h0
            out, final = self.decoder(self.drop(self.embed(tgt_in)), init)
            context, weights = self._attend(out, st)
            hidden = self._attentional(context, out)
            h_n, c_n = final if st.c is not None else (final, None)
            new = Seq2SeqState(list(h_n.unbind(0)), None if c_n is None else list(c_n.unbind(0)), hidden[:, -1],
                               st.memory, st.keys, st.mask, weights[:, -1])
            return self.head(hidden), new, (weights if return_attention else None)
        # unbind, not emb[:, t]: the backward of T selections zero-fills T copies of the whole input
        embs = self.embed(tgt_in).unbind(1)
        outs, atts, logits_t = [], [], []
        prev_pred = None
        attend = self._step_attention(st, len(embs))
        for e in embs:
            if sampled and prev_pred is not None:
                use_own = torch.rand(e.shape[0], device=e.device) >= tf
                e = torch.where(use_own[:, None], self.embed(prev_pred), e)
            out, st = self._decode_step(e, st, attend)
            outs.append(out)
            if return_attention:
                atts.append(st.attention)
            if sampled:
                lt = self.head(out)
                logits_t.append(lt)
                prev_pred = lt.detach().argmax(-1)
        logits = torch.stack(logits_t, 1) if sampled else self.head(torch.stack(outs, 1))
        return logits, st, (torch.stack(atts, 1) if return_attention else None)

    def _step_attention(self, st: Seq2SeqState, steps: int):
        """The attention for ``steps`` decoder steps: :class:`_StepAttention` when gradients flow into
        dot/general keys, else None (:meth:`_attend`)."""
        tracked = torch.is_grad_enabled() and (st.keys.requires_grad or st.memory.requires_grad)
        if tracked and self.batched_attention_backward and self.config.attention != "additive":
            return _StepAttention(st, steps)
        return None

    def forward_pairs(self, src: torch.Tensor, src_len: torch.Tensor | None, tgt_in: torch.Tensor,
                      return_attention: bool = False):
        """Training/scoring: logits (B, T, V) for ``tgt_in`` (``<bos>`` + target) given ``src``."""
        logits, _, att = self.decode(tgt_in, self.encode(src, src_len), return_attention)
        return (logits, att) if return_attention else logits

    # -- the LanguageModel interface ----------------------------------------------------------
    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Continue decoding ``ids`` (B, T) from ``state`` (made by :meth:`prefill`/:meth:`encode`)."""
        if state is None:
            raise XuxieError("a seq2seq model answers an input: encode it first (prefill / continue_text), it cannot run without one")
        logits, state, _ = self.decode(ids, state)
        return logits, state

    def prefill(self, ids: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """Encode the source ``ids`` (B, S) and run the decoder's first step from ``<bos>``."""
        st = self.encode(ids)
        bos = torch.full((ids.shape[0],), BOS, dtype=torch.long, device=ids.device)
        logits, st = self.step(bos, st)
        return logits[:, None], st

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if state is None:
            raise XuxieError("a seq2seq model answers an input: encode it first (prefill / continue_text), it cannot run without one")
        out, state = self._decode_step(self.embed(ids), state)
        return self.head(out), state

    def continuation_logits(self, prompt: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        """Logits (N, V) for each of ``new`` (1, N) as the answer to ``prompt`` (1, P)."""
        tgt_in = torch.cat([torch.full_like(new[:, :1], BOS), new[:, :-1]], 1)
        return self.forward_pairs(prompt, None, tgt_in)[0]

    def reorder_state(self, state: Seq2SeqState, index: torch.Tensor) -> Seq2SeqState:
        return state.select(index)

    def batchable_state(self, state: Seq2SeqState) -> Seq2SeqState:
        """Encoder memory padded to ``max_source_len`` (masked), without the last attention weights."""
        n = self.config.max_source_len
        return Seq2SeqState(state.h, state.c, state.feed, _pad_source(state.memory, n, 0.0), _pad_source(state.keys, n, 0.0),
                            _pad_source(state.mask, n, False))

    def join_states(self, states: list[Seq2SeqState]) -> Seq2SeqState:
        cat = lambda ts: torch.cat(list(ts), 0)  # noqa: E731
        c = None if states[0].c is None else [cat(layer) for layer in zip(*(s.c for s in states))]
        return Seq2SeqState([cat(layer) for layer in zip(*(s.h for s in states))], c, cat(s.feed for s in states),
                            cat(s.memory for s in states), cat(s.keys for s in states), cat(s.mask for s in states))

    def attention_matrix(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Attention weights (T, S) the decoder gives each source token while producing each of
        ``target`` (1, T) as the answer to ``source`` (1, S)."""
        tgt_in = torch.cat([torch.full_like(target[:, :1], BOS), target[:, :-1]], 1)
        _, att = self.forward_pairs(source, None, tgt_in, return_attention=True)
        return att[0]


register("seq2seq", Seq2SeqModel)
