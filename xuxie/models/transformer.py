"""GPT-style decoder: pre-LayerNorm blocks, causal attention through ``scaled_dot_product_attention``,
GELU MLP, tied input/output embeddings, rotary or learned positions, and a preallocated KV cache.

Sliding window. Attention is local: a token sees itself and the ``context - 1`` tokens before it.
Within the trained length that is ordinary causal attention; past it, with rotary positions
(the default) the same rule simply keeps going — the cache is a ring buffer of ``context`` slots,
each new token overwrites the oldest, and keys carry their rotary phase, so ``step()`` past the
context equals ``forward()`` over the whole sequence with a banded mask. Relative distances never
exceed what training saw. Learned absolute positions have no position ``context``; there the
window re-starts: the last ``context // 2`` tokens are encoded again at positions 0… and decoding
goes on from them (one extra forward over half a window every ``context // 2`` tokens).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import XuxieError
from .base import LanguageModel, ModelConfig, register

#: name -> (layers, heads, width, context); chosen by measurement on 2 CPU cores (README).
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"n_layer": 4, "n_head": 4, "n_embd": 128, "context": 128},
    "small": {"n_layer": 6, "n_head": 6, "n_embd": 192, "context": 256},
    "base": {"n_layer": 6, "n_head": 6, "n_embd": 384, "context": 256},
}
DEFAULT_PRESET = "tiny"
POSITIONS = ("rotary", "learned")
ACTIVATIONS = {"gelu": F.gelu, "relu2": lambda x: F.relu(x).square()}


@dataclass
class TransformerConfig(ModelConfig):
    """Sizes from a preset (measured, README); training windows are the model's context."""

    vocab_size: int
    preset: str | None = None  # fills the sizes not given; None: DEFAULT_PRESET
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    context: int | None = None
    dropout: float = 0.0
    positions: str = "rotary"
    rope_base: float = 10000.0
    bias: bool = True
    tie_weights: bool = True
    mlp: str = "gelu"  # the MLP's activation: gelu, or relu2 (ReLU squared)
    qk_norm: bool = False  # queries and keys RMS-normalised per head before attention
    logit_cap: float = 0.0  # > 0: logits soft-capped to (-cap, cap) by cap * tanh(logits / cap)
    zero_init: bool = False  # residual projections start at zero (each block starts as the identity)
    extra: dict[str, Any] = field(default_factory=dict)  # room for later options without breaking old configs

    #: measured on 2 cores (README, speedrun: Muon at 0.01 for the blocks' matrices, AdamW at 3e-3 for
    #: the embedding, batch 16 × context 128, learnt most per minute; weight decay narrows the gap
    #: between training and validation loss, and with it a schedule that decays to 0 pays; 0.2 rather
    #: than 0.1 once bf16's faster steps made the model overfit sooner);
    #: precision stays ``auto``: bf16 autocast where the CPU runs it fast, attention in fp32 (README)
    train_defaults: ClassVar[dict[str, Any]] = {"lr": 3e-3, "batch_size": 16, "optimizer": "muon", "muon_lr": 0.01,
                                                "weight_decay": 0.2, "min_lr_ratio": 0.0}
    derived_train_defaults: ClassVar[dict[str, str]] = {"seq_len": "its context"}
    saved_before: ClassVar[dict[str, Any]] = {"mlp": "gelu", "qk_norm": False, "logit_cap": 0.0, "zero_init": False}

    def adjust_train_config(self, train: Any, given: Collection[str], data: Any) -> None:
        if "seq_len" not in given:
            train.seq_len = self.context
        elif train.seq_len > self.context and self.positions == "learned":
            raise XuxieError(f"--seq-len {train.seq_len} is longer than the model's context {self.context} (learned positions); "
                             f"use --seq-len {self.context} or less, or a longer --context")

    def __post_init__(self) -> None:
        name = self.preset or DEFAULT_PRESET
        if name not in PRESETS:
            raise XuxieError(f"unknown transformer preset '{name}'; choose one of: {', '.join(PRESETS)}")
        for k, v in PRESETS[name].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        self.preset = name
        if self.n_layer < 1 or self.n_head < 1 or self.n_embd < 1:
            raise XuxieError("layers, heads and width must be at least 1")
        if self.context < 1:
            raise XuxieError(f"context must be at least 1 token, got {self.context}")
        if self.n_embd % self.n_head:
            raise XuxieError(f"{self.n_head} heads do not divide the width {self.n_embd}; choose a width that is a multiple of the heads")
        if self.positions not in POSITIONS:
            raise XuxieError(f"unknown positions '{self.positions}'; choose one of: {', '.join(POSITIONS)}")
        if self.positions == "rotary" and (self.n_embd // self.n_head) % 2:
            raise XuxieError(f"rotary positions need an even head size; {self.n_embd} / {self.n_head} is odd")
        if not 0.0 <= self.dropout < 1.0:
            raise XuxieError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.mlp not in ACTIVATIONS:
            raise XuxieError(f"unknown MLP activation '{self.mlp}'; choose one of: {', '.join(ACTIVATIONS)}")
        if self.logit_cap < 0:
            raise XuxieError(f"logit cap must be 0 (off) or positive, got {self.logit_cap}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class KVCache:
    """Keys/values of every layer in ``context`` preallocated slots per sequence (a ring buffer)."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, pos: int, window: int, tokens: torch.Tensor,
                 row_pos: torch.Tensor | None = None, plan: DecodePlan | None = None):
        self.k, self.v = k, v  # (layers, batch, heads, window, head_dim)
        self.pos = pos  # tokens seen so far (absolute position of the next token)
        self.window = window
        self.tokens = tokens  # (batch, window) the last tokens, for learned positions' re-encoding
        #: continuous batching: each row's own ``pos`` (batch,), rows of different requests
        #: joined; None when every row is at ``pos`` (one request)
        self.row_pos = row_pos
        #: the weights laid out for one-token steps (inference only), from the model at prefill
        self.plan = plan

    @classmethod
    def empty(cls, cfg: TransformerConfig, batch: int, device, dtype) -> KVCache:
        shape = (cfg.n_layer, batch, cfg.n_head, cfg.context, cfg.head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype), 0,
                   cfg.context, torch.zeros(batch, cfg.context, dtype=torch.long, device=device))

    @property
    def filled(self) -> int:
        return min(self.pos, self.window)

    def slot_positions(self) -> torch.Tensor:
        """Absolute position held by each filled slot, in slot order."""
        slots = torch.arange(self.filled, device=self.k.device)
        if self.pos <= self.window:
            return slots
        base = self.pos - self.window  # oldest position still held
        return base + (slots - base) % self.window

    def recent_tokens(self) -> torch.Tensor:
        """The held tokens in chronological order, (batch, filled)."""
        if self.pos <= self.window:
            return self.tokens[:, : self.pos]
        start = self.pos % self.window
        return torch.cat([self.tokens[:, start:], self.tokens[:, :start]], 1)

    def index_select(self, index: torch.Tensor) -> KVCache:
        return KVCache(self.k.index_select(1, index), self.v.index_select(1, index), self.pos, self.window,
                       self.tokens.index_select(0, index), None if self.row_pos is None else self.row_pos.index_select(0, index),
                       self.plan)

    def with_row_positions(self) -> KVCache:
        if self.row_pos is not None:
            return self
        row_pos = torch.full((self.k.shape[1],), self.pos, dtype=torch.long, device=self.k.device)
        return KVCache(self.k, self.v, self.pos, self.window, self.tokens, row_pos, self.plan)

    @staticmethod
    def join(caches: list[KVCache]) -> KVCache:
        """The rows of several caches with row positions, in order."""
        first = caches[0]
        return KVCache(torch.cat([c.k for c in caches], 1), torch.cat([c.v for c in caches], 1), first.pos, first.window,
                       torch.cat([c.tokens for c in caches], 0), torch.cat([c.row_pos for c in caches], 0),
                       caches[-1].plan)  # the newest: every row's plan comes from the same model


def _rope_tables(positions: torch.Tensor, dim: int, base: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32) / dim))
    ang = positions.to(torch.float32)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], -1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # GPT-NeoX / Llama "rotate half" layout, so an export maps weights one to one.
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return torch.addcmul(x * cos, rotated, sin)


def _sequence_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                        dropout: float) -> torch.Tensor:
    """Causal attention over whole sequences (``mask``: banded, past the context). Under CPU
    autocast it runs in fp32: PyTorch's CPU flash-attention backward in bf16 measured 6× slower
    than in fp32 (14–17 ms vs 2.4 ms a layer at 16×128, 4 heads), and that alone had made bf16
    training of narrow transformers no faster than fp32 while its matrix products ran 2.7× faster."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            y = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, is_causal=mask is None,
                                               dropout_p=dropout)
        return y.to(q.dtype)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=dropout)


def _rotated_rows(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Rows (or bias entries) that compute rotate-half of what ``w`` computes, head by head."""
    per_head = w.reshape(n_head, -1, *w.shape[1:])
    half = per_head.shape[1] // 2
    return torch.cat([-per_head[:, half:], per_head[:, :half]], 1).reshape(w.shape)


class DecodePlan:
    """The weights laid out for one-token steps (inference only; built at prefill, carried by the
    cache), and the step itself. Each matrix is stored transposed, (in, out), contiguous: a
    batch-1 product reads it row by row — measured 1.6× faster than ``F.linear``'s (out, in) at
    6×384 (2.37 → 1.49 ms for a token's 24 products), a little faster at 4×128. With rotary
    positions the query/key projection gains rotate-half's rows, so rotating costs one multiply and
    one multiply-add instead of slicing, negating and concatenating. Everything a step reads is in
    plain tuples: at 4×128 Python's own work (module attributes, indexing) was a third of a step."""

    def __init__(self, model: TransformerLanguageModel):
        cfg = model.config
        self.key = DecodePlan.key_of(model)
        self.rotary = cfg.positions == "rotary"
        self.qk_norm = cfg.qk_norm
        self.logit_cap = cfg.logit_cap
        C, self.heads, self.head_dim = cfg.n_embd, cfg.n_head, cfg.head_dim
        qk = 4 * C if self.rotary else 2 * C  # queries and keys (and their rotated halves)
        self.qkv_split = (qk, C)
        self.blocks = [(_norm(blk.ln_1), self._qkv(blk, cfg), _transposed(blk.attn_proj), _norm(blk.ln_2),
                        _transposed(blk.c_fc), blk.activation, _transposed(blk.mlp_proj)) for blk in model.blocks]
        self.final_norm = _norm(model.ln_f)
        self.head = model.lm_head.weight.detach().t().contiguous()

    @staticmethod
    def key_of(model: nn.Module) -> tuple:
        """Changes whenever a weight is replaced or changed in place (an optimiser step, a load)."""
        return tuple((p.data_ptr(), p._version) for p in model.parameters())

    @staticmethod
    def _qkv(blk: Block, cfg: TransformerConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        w, b = blk.c_attn.weight.detach(), blk.c_attn.bias
        if cfg.positions == "rotary":  # rows: q, k, rotate-half q, rotate-half k, v
            C, H = cfg.n_embd, cfg.n_head
            w = torch.cat([w[:2 * C], _rotated_rows(w[:C], H), _rotated_rows(w[C:2 * C], H), w[2 * C:]])
            if b is not None:
                b = torch.cat([b[:2 * C], _rotated_rows(b[:C], H), _rotated_rows(b[C:2 * C], H), b[2 * C:]])
        return w.t().contiguous(), None if b is None else b.detach()

    def run(self, x: torch.Tensor, rope: torch.Tensor | None, attend) -> torch.Tensor:
        """Logits for one token per row, ``x`` (B, width) its embedding. ``rope``: cos and sin
        tiled over queries' and keys' heads, (1 or B, 2, 2·width); ``attend(layer, q, k, v)``
        (each (B, heads, head_dim)) stores the keys and values and returns attention's output."""
        B, H, D = x.shape[0], self.heads, self.head_dim
        cos, sin = rope.unbind(1) if rope is not None else (None, None)
        for i, (norm_1, qkv, proj, norm_2, fc, activation, out) in enumerate(self.blocks):
            qk, v = _linear(F.layer_norm(x, *norm_1), *qkv).split_with_sizes(self.qkv_split, 1)
            if self.qk_norm:
                qk = F.rms_norm(qk.view(B, -1, D), (D,)).view(qk.shape)
            if rope is not None:
                qk, rotated = qk.chunk(2, 1)
                qk = torch.addcmul(qk * cos, rotated, sin)
            q, k = qk.view(B, 2, H, D).unbind(1)
            y = attend(i, q, k, v.view(B, H, D))
            x = x + _linear(y.reshape(B, -1), *proj)
            x = x + _linear(activation(_linear(F.layer_norm(x, *norm_2), *fc)), *out)
        logits = torch.mm(F.layer_norm(x, *self.final_norm), self.head)
        return self.logit_cap * torch.tanh(logits / self.logit_cap) if self.logit_cap else logits


def _norm(ln: nn.LayerNorm) -> tuple:
    """``F.layer_norm``'s arguments after the input."""
    return ln.normalized_shape, ln.weight, ln.bias, ln.eps


def _transposed(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    return linear.weight.detach().t().contiguous(), None if linear.bias is None else linear.bias.detach()


def _linear(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.mm(x, weight_t) if bias is None else torch.addmm(bias, x, weight_t)


class Block(nn.Module):
    def __init__(self, cfg: TransformerConfig):
        super().__init__()
        c, b = cfg.n_embd, cfg.bias
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.ln_1 = nn.LayerNorm(c, bias=b)
        self.c_attn = nn.Linear(c, 3 * c, bias=b)
        self.attn_proj = nn.Linear(c, c, bias=b)
        self.ln_2 = nn.LayerNorm(c, bias=b)
        self.c_fc = nn.Linear(c, 4 * c, bias=b)
        self.mlp_proj = nn.Linear(4 * c, c, bias=b)
        self.dropout = cfg.dropout
        self.activation = ACTIVATIONS[cfg.mlp]
        self.qk_norm = cfg.qk_norm

    def qkv(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values, each (B, heads, T, head_dim), with rotary ``rope`` (cos, sin) applied."""
        B, T, C = x.shape
        qkv = self.c_attn(self.ln_1(x)).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        qk, v = qkv[:2], qkv[2]  # queries and keys are normed and rotated together: half the ops
        if self.qk_norm:
            qk = F.rms_norm(qk, (self.head_dim,))
        if rope is not None:
            qk = _apply_rope(qk, rope[0].to(qk.dtype), rope[1].to(qk.dtype))
        return qk[0], qk[1], v

    def finish(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        B, H, T, D = y.shape
        y = y.transpose(1, 2).reshape(B, T, H * D)
        x = x + F.dropout(self.attn_proj(y), self.dropout, self.training)
        return x + F.dropout(self.mlp_proj(self.activation(self.c_fc(self.ln_2(x)))), self.dropout, self.training)


class TransformerLanguageModel(LanguageModel):
    config_class = TransformerConfig
    carries_state = False

    def __init__(self, config: TransformerConfig):
        super().__init__(config)
        c = config
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.context, c.n_embd) if c.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        if c.tie_weights:
            self.lm_head.weight = self.wte.weight
        self._init()

    def _init(self) -> None:
        # GPT-2's scheme: N(0, 0.02), residual projections scaled by 1/sqrt(2 * layers) (or zero).
        residual_std = 0.0 if self.config.zero_init else 0.02 / math.sqrt(2 * self.config.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                nn.init.normal_(p, 0.0, residual_std if name.endswith(("attn_proj.weight", "mlp_proj.weight")) else 0.02)
            elif name.endswith(".bias"):
                nn.init.zeros_(p)

    # -- positions -----------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        x = self.wte(ids)
        if self.wpe is not None:
            x = x + self.wpe(positions)
        return F.dropout(x, self.config.dropout, self.training)

    def _rope(self, start: int, length: int, device: torch.device, dtype: torch.dtype):
        """cos/sin for positions start … start+length-1, sliced from a table that grows by doubling."""
        if self.config.positions != "rotary":
            return None
        end = start + length
        table = getattr(self, "_rope_table", None)
        if table is None or table[0].shape[0] < end or table[0].device != device or table[0].dtype != dtype:
            size = max(end, 2 * self.config.context, 2 * (table[0].shape[0] if table is not None else 0))
            with torch.inference_mode(False):  # a table grown while generating must serve training too
                table = _rope_tables(torch.arange(size, device=device), self.config.head_dim, self.config.rope_base, dtype)
            self._rope_table = table
        return table[0][start:end], table[1][start:end]

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.lm_head(self.ln_f(x))
        cap = self.config.logit_cap
        return cap * torch.tanh(logits / cap) if cap else logits

    # -- full sequences ------------------------------------------------------------------------
    def forward(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Logits for every position. With ``state`` (a :class:`KVCache`) the tokens continue it."""
        if state is not None:
            return self._extend(ids, state)
        return self._run(ids, want_cache=False)

    def prefill(self, ids: torch.Tensor) -> tuple[torch.Tensor, KVCache]:
        logits, cache = self._run(ids, want_cache=True)
        if not self.training and not torch.is_grad_enabled():
            cache.plan = self._decode_plan()
        return logits, cache

    def _decode_plan(self) -> DecodePlan:
        plan = getattr(self, "_plan", None)
        if plan is None or plan.key != DecodePlan.key_of(self):
            plan = self._plan = DecodePlan(self)
        return plan

    def _run(self, ids: torch.Tensor, want_cache: bool) -> tuple[torch.Tensor, Any]:
        B, T = ids.shape
        W = self.config.context
        if T > W and self.wpe is not None:
            raise XuxieError(f"a sequence of {T} tokens is longer than this model's context of {W} (learned positions); "
                             "use windows of at most the context, or rotary positions")
        pos = torch.arange(T, device=ids.device)
        x = self._embed(ids, pos)
        rope = self._rope(0, T, ids.device, torch.float32)
        mask = None if T <= W else (pos[None, :] <= pos[:, None]) & (pos[:, None] - pos[None, :] < W)
        keys, values = [], []
        for blk in self.blocks:
            q, k, v = blk.qkv(x, rope)
            y = _sequence_attention(q, k, v, mask, self.config.dropout if self.training else 0.0)
            x = blk.finish(x, y)
            if want_cache:
                keys.append(k)
                values.append(v)
        return self._logits(x), (self._cache_from(ids, keys, values) if want_cache else None)

    def _cache_from(self, ids: torch.Tensor, keys: list, values: list) -> KVCache:
        B, T = ids.shape
        W = self.config.context
        cache = KVCache.empty(self.config, B, ids.device, keys[0].dtype)
        n = min(T, W)
        pos = torch.arange(T - n, T, device=ids.device)
        slots = pos % W
        for i, (k, v) in enumerate(zip(keys, values)):
            cache.k[i][:, :, slots] = k[:, :, T - n:]
            cache.v[i][:, :, slots] = v[:, :, T - n:]
        cache.tokens[:, slots] = ids[:, T - n:]
        cache.pos = T
        return cache

    def _extend(self, ids: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        """Process ``ids`` after the tokens in ``cache`` (one or many), updating it in place."""
        B, T = ids.shape
        W = self.config.context
        if cache.row_pos is not None:
            if T != 1:
                raise XuxieError("a cache of joined rows (continuous batching) advances one token at a time")
            return self._extend_rows(ids, cache)
        if self.wpe is not None and cache.pos + T > W:
            return self._restart_window(ids, cache)
        if T > 1:  # several tokens: exact, via keys of cache + new tokens with a banded causal mask
            outs = []
            for t in range(T):
                logits, cache = self._extend(ids[:, t:t + 1], cache)
                outs.append(logits)
            return torch.cat(outs, 1), cache
        if cache.plan is not None and not self.training:
            return self._extend_planned(ids[:, 0], cache)[:, None], cache
        p = cache.pos
        pos = torch.tensor([p], device=ids.device)
        x = self._embed(ids, pos)
        rope = self._rope(p, 1, ids.device, torch.float32)
        slot = p % W
        n = min(p + 1, W)
        for i, blk in enumerate(self.blocks):
            q, k, v = blk.qkv(x, rope)
            ck, cv = cache.k[i], cache.v[i]
            ck[:, :, slot] = k[:, :, 0]
            cv[:, :, slot] = v[:, :, 0]
            # Every filled slot is inside the window, and attention does not care about slot order.
            y = F.scaled_dot_product_attention(q, ck[:, :, :n], cv[:, :, :n])
            x = blk.finish(x, y)
        cache.tokens[:, slot] = ids[:, 0]
        cache.pos = p + 1
        return self._logits(x), cache

    def _extend_planned(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits (B, vocab) of one token per row after ``cache`` (updated in place), with its
        :class:`DecodePlan`: ``_extend``'s result with fewer ops."""
        W = self.config.context
        p = cache.pos
        slot, n = p % W, min(p + 1, W)
        x = self.wte.weight.index_select(0, tokens)
        if self.wpe is not None:
            x = x + self.wpe.weight[p]
        rope = self._tiled_rope(p, x.dtype)[p:p + 1] if cache.plan.rotary else None

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            keys, values = cache.k[i], cache.v[i]
            keys.select(2, slot).copy_(k)
            values.select(2, slot).copy_(v)
            return F.scaled_dot_product_attention(q.unsqueeze(2), keys.narrow(2, 0, n), values.narrow(2, 0, n))

        logits = cache.plan.run(x, rope, attend)
        cache.tokens.select(1, slot).copy_(tokens)
        cache.pos = p + 1
        return logits

    def _tiled_rope(self, position: int, dtype: torch.dtype) -> torch.Tensor:
        """cos and sin (positions, 2, 2·width) tiled over queries' and keys' heads, for the
        planned step, covering ``position`` (rebuilt with the rotary table when it grows)."""
        self._rope(position, 1, self.wte.weight.device, torch.float32)  # grows the table if needed
        cos, sin = self._rope_table
        tiled = getattr(self, "_rope_tiled", None)
        if tiled is None or tiled[0] is not cos or tiled[1].dtype != dtype:
            reps = (1, 2 * self.config.n_head)
            tiled = self._rope_tiled = cos, torch.stack([cos.repeat(reps), sin.repeat(reps)], 1).to(dtype)
        return tiled[1]

    def _extend_rows(self, ids: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        """One token per row, each row at its own position (continuous batching). Every row
        attends over all ``context`` slots with a mask of its filled ones, so its arithmetic has
        the same shapes whatever the other rows are."""
        W = self.config.context
        p = cache.row_pos
        # Learned positions: rows whose token would go past the window are re-encoded after the
        # batched pass (their recent tokens read first, before the pass overwrites a slot).
        restarts = (p >= W).nonzero()[:, 0].tolist() if self.wpe is not None else []
        recent = {r: self._recent_tokens(cache, r) for r in restarts}
        p = p.clamp(max=W - 1) if restarts else p
        B = ids.shape[0]
        x = self._embed(ids, p[:, None])
        rows = torch.arange(B, device=ids.device)
        slot = p % W
        filled = torch.arange(W, device=ids.device)[None, :] < (p + 1).clamp(max=W)[:, None]
        mask = filled[:, None, None, :]  # (B, 1, 1, W)
        if cache.plan is not None and not self.training:  # logits (B, 1, vocab) either way
            logits = self._rows_planned(x[:, 0], p, cache, rows, slot, mask)
        else:
            logits = self._rows_unplanned(x, p, cache, rows, slot, mask)
        cache.tokens[rows, slot] = ids[:, 0]
        cache.row_pos = cache.row_pos + 1
        for r in restarts:
            logits[r] = self._restart_row(recent[r], ids[r], cache, r)
        return logits, cache

    def _rows_unplanned(self, x: torch.Tensor, p: torch.Tensor, cache: KVCache, rows: torch.Tensor, slot: torch.Tensor,
                        mask: torch.Tensor) -> torch.Tensor:
        rope = None
        if self.config.positions == "rotary":
            table = self._rope(0, int(p.max()) + 1, x.device, torch.float32)
            rope = table[0][p][:, None, None], table[1][p][:, None, None]  # (B, 1, 1, head_dim)
        for i, blk in enumerate(self.blocks):
            q, k, v = blk.qkv(x, rope)
            ck, cv = cache.k[i], cache.v[i]
            ck[rows, :, slot] = k[:, :, 0]
            cv[rows, :, slot] = v[:, :, 0]
            x = blk.finish(x, F.scaled_dot_product_attention(q, ck, cv, attn_mask=mask))
        return self._logits(x)

    def _rows_planned(self, x: torch.Tensor, p: torch.Tensor, cache: KVCache, rows: torch.Tensor, slot: torch.Tensor,
                      mask: torch.Tensor) -> torch.Tensor:
        rope = self._tiled_rope(int(p.max()), x.dtype)[p] if cache.plan.rotary else None

        def attend(i: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            cache.k[i][rows, :, slot] = k
            cache.v[i][rows, :, slot] = v
            return F.scaled_dot_product_attention(q.unsqueeze(2), cache.k[i], cache.v[i], attn_mask=mask)

        return cache.plan.run(x, rope, attend)[:, None]

    def _recent_tokens(self, cache: KVCache, r: int) -> torch.Tensor:
        """Row ``r``'s last ``context // 2 - 1`` tokens, oldest first (a full ring buffer)."""
        W = self.config.context
        keep = max(W // 2, 1)
        order = (int(cache.row_pos[r]) % W + torch.arange(W, device=cache.tokens.device)) % W
        return cache.tokens[r, order][W - (keep - 1):] if keep > 1 else cache.tokens[r, :0]

    def _restart_row(self, recent: torch.Tensor, token: torch.Tensor, cache: KVCache, r: int) -> torch.Tensor:
        """Learned positions past the window, for row ``r`` of joined rows: encode ``recent`` +
        ``token`` from position 0 into the row, returning its logits (1, vocab)."""
        logits, fresh = self.prefill(torch.cat([recent, token])[None])
        cache.k[:, r], cache.v[:, r] = fresh.k[:, 0], fresh.v[:, 0]
        cache.tokens[r] = fresh.tokens[0]
        cache.row_pos[r] = fresh.pos
        return logits[0, -1:]

    def _restart_window(self, ids: torch.Tensor, cache: KVCache) -> tuple[torch.Tensor, KVCache]:
        """Learned positions past the context: re-encode the recent half window, then go on."""
        W = self.config.context
        keep = max(W // 2, 1)
        outs = []
        for t in range(ids.shape[1]):
            if cache.pos + 1 > W:
                recent = cache.recent_tokens()[:, -(keep - 1):] if keep > 1 else cache.recent_tokens()[:, :0]
                seq = torch.cat([recent, ids[:, t:t + 1]], 1)
                logits, cache = self.prefill(seq)
                outs.append(logits[:, -1:])
            else:
                logits, cache = self._extend(ids[:, t:t + 1], cache)
                outs.append(logits)
        return torch.cat(outs, 1), cache

    def step(self, ids: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if state is None:
            logits, state = self.prefill(ids[:, None])
        else:
            logits, state = self._extend(ids[:, None], state)
        return logits[:, -1], state

    def reorder_state(self, state: Any, index: torch.Tensor) -> Any:
        return None if state is None else state.index_select(index)

    def batchable_state(self, state: KVCache) -> KVCache:
        return state.with_row_positions()

    def join_states(self, states: list[KVCache]) -> KVCache:
        return KVCache.join(states)


register("transformer", TransformerLanguageModel)
