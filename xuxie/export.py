"""Export a model directory to other toolkits' formats.

``hf``: a Hugging Face transformers directory, loadable offline with
``transformers.AutoModelForCausalLM.from_pretrained(OUT)``:

=================  =====================  ==========================================
xuxie transformer  HF class               model_type
=================  =====================  ==========================================
rotary positions   ``GPTNeoXForCausalLM``  ``gpt_neox`` (sequential residual, full rotary)
learned positions  ``GPT2LMHeadModel``     ``gpt2`` (exact GELU, Conv1D weights)
=================  =====================  ==========================================

Files: ``config.json``, ``generation_config.json``, ``model.safetensors`` and, for char
tokenizers, ``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json`` (a
``tokenizers`` WordLevel model that cuts text into single characters); ``README.md`` says what
is in the folder and what differs. Nothing here imports ``transformers``: the files are written
directly, so exporting needs only xuxie's own dependencies.

The export is written into a temporary folder beside ``OUT`` and renamed into place at the end,
so an interrupted export never leaves a half-written ``OUT``. Its config.json carries an
``xuxie_export`` marker listing the files xuxie wrote: ``--overwrite`` replaces only those, and
only in a folder with that marker (never a folder xuxie did not write, nor a model directory).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .errors import XuxieError
from .fileio import CONFIG, EXPORT_FORMAT, fsync_dir, make_temp_dir, output_folder_kind

FORMATS = ("hf",)
#: architectures each format can represent
EXPORTABLE = {"hf": ("transformer",)}
WEIGHTS = "model.safetensors"
#: our MLP activations by the names transformers' ACT2FN gives them (F.gelu is the exact erf GELU)
HF_ACTIVATIONS = {"gelu": "gelu", "relu2": "relu2"}


def export_model(model_dir: str | Path, out_dir: str | Path, format: str = "hf", overwrite: bool = False) -> Path:
    """Export ``model_dir`` to ``out_dir`` in ``format`` (only ``hf`` for now)."""
    if format not in FORMATS:
        raise XuxieError(f"unknown export format '{format}'; choose one of: {', '.join(FORMATS)}")
    return export_hf(model_dir, out_dir, overwrite=overwrite)


def export_hf(model_dir: str | Path, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a Hugging Face transformers directory for the transformer model in ``model_dir``."""
    model_dir, out = Path(model_dir), Path(out_dir)
    config = ckpt.read_config(model_dir)
    arch = config["arch"]
    if arch not in EXPORTABLE["hf"]:
        raise XuxieError(f"{model_dir} is an {arch} model, which Hugging Face transformers has no causal-LM class for; "
                         f"only {', '.join(EXPORTABLE['hf'])} models export (train one with --arch transformer)")
    _check_out(model_dir, out, overwrite)
    model, tokenizer, config = ckpt.load_model_dir(model_dir, "cpu")
    cfg = model.config
    unmatched = [name for name, used in (("QK-norm", cfg.qk_norm), ("a logit cap", cfg.logit_cap)) if used]
    if unmatched:
        raise XuxieError(f"{model_dir} uses {' and '.join(unmatched)}, which GPT-NeoX and GPT-2 in Hugging Face transformers "
                         "do not have; only models trained without them export")
    if cfg.positions == "rotary":
        hf_config, tensors = _neox(model)
    elif cfg.positions == "learned":
        hf_config, tensors = _gpt2(model)
    else:  # pragma: no cover - TransformerConfig validates positions
        raise XuxieError(f"cannot export positions '{cfg.positions}'")
    mode = config.get("mode", "text")
    files: dict[str, str] = {"generation_config.json": _dumps(_generation_config(tokenizer, mode))}
    tok_files = _char_tokenizer_files(tokenizer, cfg.context) if tokenizer.kind == "char" else {}
    files.update(tok_files)
    files["README.md"] = _readme(model_dir, config, hf_config, tokenizer.kind, bool(tok_files), mode)
    hf_config["xuxie_export"] = {"format": EXPORT_FORMAT, "version": 1, "files": sorted([*files, CONFIG, WEIGHTS])}
    files[CONFIG] = _dumps(hf_config)  # last: written last, so the marker is the last thing to change
    _write_dir(out, files, tensors)
    return out


# --------------------------------------------------------------------------- checks
def _check_out(model_dir: Path, out: Path, overwrite: bool) -> None:
    """OUT must be new, empty, or (with --overwrite) an earlier xuxie export."""
    if out.resolve() == model_dir.resolve() or model_dir.resolve().is_relative_to(out.resolve()):
        raise XuxieError(f"{out} holds the model being exported; choose another path for the export")
    kind = output_folder_kind(out, str(out), "choose another path")
    if kind == "model":
        raise XuxieError(f"{out} is a xuxie model directory; choose another path for the export")
    if kind == "export" and not overwrite:
        raise XuxieError(f"{out} holds an earlier export; pass --overwrite to replace it, or choose another path")


# --------------------------------------------------------------------------- weights
def _zeros_if_none(t: torch.Tensor | None, n: int) -> torch.Tensor:
    """HF GPT-2 and NeoX always have LayerNorm/MLP biases: a bias-free model exports zeros."""
    return torch.zeros(n) if t is None else t


def _common(model) -> dict[str, Any]:
    cfg = model.config
    return {
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": bool(cfg.tie_weights),
        "bos_token_id": 2, "eos_token_id": 3, "pad_token_id": 0,
        "initializer_range": 0.02,
        "use_cache": True,
        "dtype": "float32",
    }


def _gpt2(model) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    cfg = model.config
    C = cfg.n_embd
    hf = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": C, "n_positions": cfg.context, "n_inner": 4 * C,
        "activation_function": HF_ACTIVATIONS[cfg.mlp],  # gelu: exact erf GELU, as F.gelu (GPT-2's own is gelu_new, tanh)
        "layer_norm_epsilon": 1e-5,
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
        "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
        **_common(model),
    }
    t: dict[str, torch.Tensor] = {"transformer.wte.weight": model.wte.weight, "transformer.wpe.weight": model.wpe.weight}
    for i, blk in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        # HF GPT-2 uses Conv1D: weight stored (in, out), the transpose of nn.Linear's (out, in).
        for name, lin, n_out in (("attn.c_attn", blk.c_attn, 3 * C), ("attn.c_proj", blk.attn_proj, C),
                                 ("mlp.c_fc", blk.c_fc, 4 * C), ("mlp.c_proj", blk.mlp_proj, C)):
            t[p + name + ".weight"] = lin.weight.t()
            t[p + name + ".bias"] = _zeros_if_none(lin.bias, n_out)
        for name, ln in (("ln_1", blk.ln_1), ("ln_2", blk.ln_2)):
            t[p + name + ".weight"] = ln.weight
            t[p + name + ".bias"] = _zeros_if_none(ln.bias, C)
    t["transformer.ln_f.weight"] = model.ln_f.weight
    t["transformer.ln_f.bias"] = _zeros_if_none(model.ln_f.bias, C)
    if not cfg.tie_weights:
        t["lm_head.weight"] = model.lm_head.weight
    return hf, t


def _neox_qkv(x: torch.Tensor, n_head: int, head_dim: int) -> torch.Tensor:
    """Rows of our c_attn are (3, heads, head_dim); NeoX's query_key_value wants (heads, 3, head_dim)."""
    rest = x.shape[1:]
    return x.reshape(3, n_head, head_dim, *rest).transpose(0, 1).reshape(3 * n_head * head_dim, *rest)


def _neox(model) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    cfg = model.config
    C, H, D = cfg.n_embd, cfg.n_head, cfg.head_dim
    hf = {
        "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
        "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head, "hidden_size": C,
        "intermediate_size": 4 * C, "max_position_embeddings": cfg.context,
        "hidden_act": HF_ACTIVATIONS[cfg.mlp], "layer_norm_eps": 1e-5,
        "use_parallel_residual": False,  # x + attn(ln1(x)), then + mlp(ln2(.)): a GPT-2 style block
        "attention_bias": bool(cfg.bias),
        "attention_dropout": cfg.dropout, "hidden_dropout": cfg.dropout,
        # transformers >= 5 reads rope_parameters; older releases read rotary_pct / rotary_emb_base.
        "rope_parameters": {"rope_type": "default", "rope_theta": float(cfg.rope_base), "partial_rotary_factor": 1.0},
        "rotary_pct": 1.0, "rotary_emb_base": float(cfg.rope_base),
        **_common(model),
    }
    t: dict[str, torch.Tensor] = {"gpt_neox.embed_in.weight": model.wte.weight}
    for i, blk in enumerate(model.blocks):
        p = f"gpt_neox.layers.{i}."
        t[p + "attention.query_key_value.weight"] = _neox_qkv(blk.c_attn.weight, H, D)
        t[p + "attention.dense.weight"] = blk.attn_proj.weight
        if cfg.bias:  # attention biases follow attention_bias; MLP and LayerNorm biases always exist
            t[p + "attention.query_key_value.bias"] = _neox_qkv(blk.c_attn.bias, H, D)
            t[p + "attention.dense.bias"] = blk.attn_proj.bias
        t[p + "mlp.dense_h_to_4h.weight"] = blk.c_fc.weight
        t[p + "mlp.dense_h_to_4h.bias"] = _zeros_if_none(blk.c_fc.bias, 4 * C)
        t[p + "mlp.dense_4h_to_h.weight"] = blk.mlp_proj.weight
        t[p + "mlp.dense_4h_to_h.bias"] = _zeros_if_none(blk.mlp_proj.bias, C)
        for name, ln in (("input_layernorm", blk.ln_1), ("post_attention_layernorm", blk.ln_2)):
            t[p + name + ".weight"] = ln.weight
            t[p + name + ".bias"] = _zeros_if_none(ln.bias, C)
    t["gpt_neox.final_layer_norm.weight"] = model.ln_f.weight
    t["gpt_neox.final_layer_norm.bias"] = _zeros_if_none(model.ln_f.bias, C)
    if not cfg.tie_weights:
        # The name every released NeoX checkpoint uses; transformers >= 5 renames it to lm_head on load.
        t["embed_out.weight"] = model.lm_head.weight
    return hf, t


# --------------------------------------------------------------------------- tokenizer & generation
def _generation_config(tokenizer, mode: str) -> dict[str, Any]:
    from .decoding import suppressed_ids

    return {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id,
            # the tokens xuxie never generates (<pad> <unk> <bos>, and <eos> unless lines mode)
            "suppress_tokens": suppressed_ids(tokenizer, mode)}


def _char_tokenizer_files(tokenizer, context: int) -> dict[str, str]:
    """A ``tokenizers`` WordLevel model over the characters, with a pre-tokenizer that isolates
    every character (``[\\s\\S]`` also matches line breaks) and a decoder that joins the pieces."""
    from .tokenizers import SPECIALS

    added = [{"id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    tok_json = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Split", "pattern": {"Regex": r"[\s\S]"}, "behavior": "Isolated", "invert": False},
        "post_processor": None,
        # <unk> reads as U+FFFD, as xuxie shows it; then the pieces are concatenated.
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "<unk>"}, "content": "\ufffd"},
            {"type": "Fuse"},
        ]},
        "model": {"type": "WordLevel", "vocab": {t: i for i, t in enumerate(tokenizer.tokens)}, "unk_token": "<unk>"},
    }
    specials = {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>"}
    tok_config = {"tokenizer_class": "PreTrainedTokenizerFast", **specials, "model_max_length": context,
                  "clean_up_tokenization_spaces": False, "add_bos_token": False, "add_eos_token": False}
    return {"tokenizer.json": _dumps(tok_json), "tokenizer_config.json": _dumps(tok_config),
            "special_tokens_map.json": _dumps(specials)}


def _readme(model_dir: Path, config: dict[str, Any], hf: dict[str, Any], tok_kind: str, has_tokenizer: bool, mode: str) -> str:
    cls = hf["architectures"][0]
    m = config["model"]
    lines = [
        f"# {model_dir.name}: a xuxie transformer exported to Hugging Face transformers",
        "",
        f"Exported from `{model_dir}` by `xuxie export`. Class `{cls}` (model_type `{hf['model_type']}`), "
        f"{m['n_layer']} layers × {m['n_embd']} wide, {m['n_head']} heads, context {m['context']}, "
        f"{m['positions']} positions, vocabulary {m['vocab_size']} ({tok_kind} tokenizer, {mode} mode).",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM" + (", AutoTokenizer" if has_tokenizer else ""),
        "model = AutoModelForCausalLM.from_pretrained(\"PATH\")",
    ]
    if has_tokenizer:
        lines += ["tok = AutoTokenizer.from_pretrained(\"PATH\")",
                  "ids = tok(\"ROMEO:\", return_tensors=\"pt\").input_ids" if mode == "text" else
                  "ids = tok(\"<bos>\" + \"first words\", return_tensors=\"pt\").input_ids",
                  "out = model.generate(ids, do_sample=True, top_k=0, max_new_tokens=100)",
                  "print(tok.decode(out[0], skip_special_tokens=True))"]
    lines += ["```", "", "Notes:", ""]
    if has_tokenizer:
        lines.append("- The tokenizer is a `tokenizers` WordLevel model: one token per character, unknown characters "
                     "become `<unk>` (decoded as U+FFFD). The literal texts `<pad>`, `<unk>`, `<bos>`, `<eos>` "
                     "are read as the special tokens.")
    else:
        lines.append(f"- No tokenizer files: the {tok_kind} tokenizer (jieba segmentation for Chinese, a regex for "
                     "other scripts, and a character fallback for words outside the vocabulary) has no equivalent "
                     "in Hugging Face `tokenizers`. Encode with xuxie (`xuxie.tokenizers.load_tokenizer` on the "
                     "original model's tokenizer.json) and pass the ids to the model.")
    lines.append("- Special ids: `<pad>`=0, `<unk>`=1, `<bos>`=2, `<eos>`=3. generation_config.json suppresses the "
                 "tokens xuxie never generates"
                 + (" (lines models start every text with `<bos>` and stop at `<eos>`)." if mode == "lines" else "."))
    lines.append("- transformers samples with top_k=50 unless told otherwise; pass `top_k=0` for xuxie's default "
                 "(plain sampling at temperature 1).")
    if m["positions"] == "rotary":
        lines.append(f"- Within the context ({m['context']} tokens) the logits equal xuxie's. Past it, xuxie keeps a "
                     "sliding window of the last context tokens; transformers attends to the whole sequence, which "
                     "the model was not trained for.")
    else:
        lines.append(f"- Learned positions: at most {m['context']} tokens (n_positions) per sequence; xuxie re-encodes "
                     "the last half window to go further, transformers cannot.")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- writing
def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=2) + "\n"


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _write_dir(out: Path, files: dict[str, str], tensors: dict[str, torch.Tensor]) -> None:
    """Write everything into a temporary folder beside ``out``; then rename it into place (a new
    or empty ``out``) or move its files over an earlier export's, config.json last."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(out.parent, out.name)
    try:
        # Every tensor its own contiguous copy (safetensors refuses shared storage).
        weights = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in tensors.items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        _fsync(tmp / WEIGHTS)
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
            _fsync(tmp / name)
        if out.is_dir() and any(out.iterdir()):
            _replace_export(out, tmp, [WEIGHTS, *files])
        else:
            os.replace(tmp, out)  # also replaces an empty folder
        fsync_dir(out.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_export(out: Path, new: Path, names: list[str]) -> None:
    """Move the files of a new export over an earlier one (checked by :func:`_check_out`), remove
    the earlier export's files the new one lacks, and leave every other file in ``out`` alone."""
    earlier = json.loads((out / CONFIG).read_text(encoding="utf-8"))["xuxie_export"].get("files", [])
    for name in set(earlier) - set(names) - {CONFIG}:
        if Path(name).name == name:  # a bare file name, as xuxie writes them
            (out / name).unlink(missing_ok=True)
    for name in sorted(names, key=lambda n: n == CONFIG):  # config.json, with the marker, last
        os.replace(new / name, out / name)
