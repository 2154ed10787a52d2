"""The model directory: everything that defines a model, loadable with no network.

```
config.json          format, version, arch, model config, tokenizer kind, corpus mode, training summary
tokenizer.json       the tokenizer (JSON)
model.safetensors    best weights (lowest validation loss)
last.safetensors     latest weights, for --resume
trainer_state.pt     optimiser, step, schedule and RNG state, for --resume (tensors only)
log.jsonl            metrics, one JSON object a line
samples.md           sample previews written during training
```
Every file is written atomically (temp file + rename): an interrupted write never leaves a
half-written model behind. Weights are safetensors, never pickle; the trainer state is loaded
with ``weights_only=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .errors import XuxieError
from .fileio import MODEL_FORMAT, atomic_path, atomic_write_text
from .models import LanguageModel, model_from_config
from .tokenizers import Tokenizer, load_tokenizer

FORMAT = MODEL_FORMAT
VERSION = 1
CONFIG = "config.json"
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
LAST = "last.safetensors"
TRAINER_STATE = "trainer_state.pt"
LOG = "log.jsonl"
SAMPLES = "samples.md"


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def save_weights(model: LanguageModel, path: Path, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_model

    with atomic_path(path) as tmp:
        save_model(model, str(tmp), metadata=metadata)


def load_weights(model: LanguageModel, path: Path) -> dict[str, str]:
    from safetensors import safe_open
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(model, str(path), strict=False, device=str(model.device))
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as e:  # safetensors raises several types for damaged files
        if isinstance(e, RuntimeError) and "size mismatch" in str(e):
            raise XuxieError(f"weights {path} do not fit the model described in config.json (tensor shapes differ); the model directory is damaged — retrain or restore it") from None
        detail = " ".join(str(e).split())[:120]
        raise XuxieError(f"cannot load weights {path} ({type(e).__name__}: {detail}); the model directory is damaged — retrain or restore it") from None
    if missing or unexpected:
        raise XuxieError(f"weights {path} do not fit the model in config.json (missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}); the model directory is damaged")
    return meta


def write_config(path: str | Path, config: dict[str, Any]) -> None:
    atomic_write_text(Path(path) / CONFIG, json.dumps({"format": FORMAT, "version": VERSION, **config}, ensure_ascii=False, indent=2))


def read_config(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise XuxieError(f"model directory {path} does not exist; train one with 'xuxie train CORPUS --out {path}'")
    if not path.is_dir():
        raise XuxieError(f"{path} is a file, not a model directory; give the folder made by 'xuxie train --out'")
    if not (path / CONFIG).is_file():
        raise XuxieError(f"{path} is not a xuxie model directory (no {CONFIG}); give the folder made by 'xuxie train --out'")
    try:
        config = json.loads((path / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise XuxieError(f"{path / CONFIG} is damaged ({e}); retrain or restore the model directory") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise XuxieError(f"{path / CONFIG} is not a xuxie model config; give the folder made by 'xuxie train --out'")
    if config.get("version", 0) > VERSION:
        raise XuxieError(f"{path} was written by a newer xuxie (format {config.get('version')}); upgrade xuxie to load it")
    for key in ("arch", "model", "tokenizer", "mode"):
        if key not in config:
            raise XuxieError(f"{path / CONFIG} has no '{key}'; the model directory is damaged")
    return config


def load_model_dir(path: str | Path, device: str | torch.device | None = None, weights: str = WEIGHTS) -> tuple[LanguageModel, Tokenizer, dict[str, Any]]:
    """Load (model, tokenizer, config) from a model directory, ready for inference."""
    path = Path(path)
    config = read_config(path)
    if not (path / TOKENIZER).is_file():
        raise XuxieError(f"{path} has no {TOKENIZER}; the model directory is damaged — retrain or restore it")
    tokenizer = load_tokenizer(path / TOKENIZER)
    wpath = path / weights
    if not wpath.is_file():
        raise XuxieError(f"{path} has no {weights}; the model directory is damaged or training never finished an evaluation")
    check_config_fits(path, config, tokenizer, wpath)
    model = model_from_config(config["arch"], config["model"])
    model.to(resolve_device(device))
    load_weights(model, wpath)
    model.eval()
    return model, tokenizer, config


def weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the safetensors header alone (no tensor is read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as e:  # safetensors raises several types for damaged files
        detail = " ".join(str(e).split())[:120]
        raise XuxieError(f"cannot read weights {path} ({type(e).__name__}: {detail}); the model directory is damaged — retrain or restore it") from None


def check_config_fits(path: Path, config: dict[str, Any], tokenizer: Tokenizer, weights: Path) -> None:
    """config.json against tokenizer.json and the weights' shapes, before anything is allocated:
    the model is first built on the meta device (shapes only), so a damaged config.json that
    asks for, say, a hidden size of 10^7 is one line instead of an out-of-memory crash."""
    try:
        with torch.device("meta"):
            skeleton = model_from_config(config["arch"], config["model"])
    except XuxieError:
        raise
    except Exception as e:
        raise XuxieError(f"{path / CONFIG} describes no buildable model ({type(e).__name__}); the model directory is damaged") from None
    n_labels = len(config.get("labels", []))
    if skeleton.config.vocab_size != tokenizer.vocab_size + n_labels:
        raise XuxieError(f"{path}: the model has {skeleton.config.vocab_size} tokens but the tokenizer {tokenizer.vocab_size}"
                         f"{f' + {n_labels} context labels' if n_labels else ''}; the model directory is damaged")
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    for name, shape in weight_shapes(weights).items():
        if name in expected and expected[name] != shape:
            raise XuxieError(f"{path / CONFIG} does not fit {weights.name}: '{name}' is {list(shape)} in the weights but "
                             f"{list(expected[name])} by config.json; the model directory is damaged — retrain or restore it")


def save_trainer_state(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(Path(path) / TRAINER_STATE) as tmp:
        torch.save(state, tmp)


def load_trainer_state(path: str | Path, device: torch.device | None = None) -> dict[str, Any]:
    f = Path(path) / TRAINER_STATE
    if not f.is_file():
        raise XuxieError(f"{path} has no {TRAINER_STATE}, so it cannot be resumed; train without --resume into a new --out")
    try:
        return torch.load(f, map_location=device or "cpu", weights_only=True)
    except Exception as e:
        raise XuxieError(f"{f} is damaged ({type(e).__name__}); cannot resume — train without --resume into a new --out") from None


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/"auto": CUDA if present, else Apple MPS, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise XuxieError(f"unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (chosen.index or 0) >= count:
            have = f"this machine has {count} CUDA device{'s' if count != 1 else ''}" + (f" (cuda:0 to cuda:{count - 1})" if count > 1 else "")
            raise XuxieError(f"device '{device}' is not available: {have}; use --device auto or cpu")
    if chosen.type == "mps" and not _mps_available():
        raise XuxieError(f"device '{device}' is not available (Apple GPUs only); use --device auto or cpu")
    return chosen
