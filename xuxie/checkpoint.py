"""The model directory: everything that defines a model, loadable with no network.

```
config.json          format marker, version, arch, model config, tokenizer kind, corpus, results
tokenizer.json       the tokenizer (JSON)
model.safetensors    best weights (lowest validation loss)
checkpoints/         the two newest checkpoints, for --resume; each one folder:
  step-000001200/      weights.safetensors + trainer_state.pt (optimiser, step, schedule, RNG)
log.jsonl            metrics, one JSON object a line
samples.md           sample previews written during training
```
Every file is written atomically (temp file + rename) and a checkpoint is a folder renamed into
place once complete, so a process killed at any instant leaves the previous checkpoint whole and
never a half-written file that looks finished. Weights are safetensors, never pickle; the trainer
state is loaded with ``weights_only=True``. Folders written by older versions (``last.safetensors``
+ ``trainer_state.pt`` beside config.json) still load and resume.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .errors import XuxieError, XuxieWarning
from .fileio import CONFIG, LOG, MODEL_FORMAT, SAMPLES, atomic_path, atomic_write_text, fsync_dir, make_temp_dir, output_folder_kind
from .models import LanguageModel, model_from_config
from .tokenizers import Tokenizer, load_tokenizer

FORMAT = MODEL_FORMAT
VERSION = 1
TOKENIZER = "tokenizer.json"
WEIGHTS = "model.safetensors"
LAST = "last.safetensors"
TRAINER_STATE = "trainer_state.pt"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2  # the newest and the one before it, in case the newest is damaged
#: every file a training run writes beside config.json: the only ones --overwrite removes
RUN_FILES = (WEIGHTS, LAST, TRAINER_STATE, LOG, SAMPLES)
_CHECKPOINT_NAME = re.compile(r"step-(\d+)(?:\.(\d+))?")


def is_model_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG).is_file()


def has_checkpoint(path: str | Path) -> bool:
    """Whether a run in ``path`` ever saved weights (otherwise the folder holds nothing to lose)."""
    return (Path(path) / WEIGHTS).is_file() or bool(checkpoints(path)) or (Path(path) / LAST).is_file()


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
            raise XuxieError(f"weights {path} do not fit the model described in config.json (tensor shapes differ); "
                             "the model directory is damaged — retrain or restore it") from None
        detail = " ".join(str(e).split())[:120]
        raise XuxieError(f"cannot load weights {path} ({type(e).__name__}: {detail}); "
                         "the model directory is damaged — retrain or restore it") from None
    if missing or unexpected:
        raise XuxieError(f"weights {path} do not fit the model in config.json (missing {sorted(missing)[:3]}, unexpected "
                         f"{sorted(unexpected)[:3]}); the model directory is damaged")
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


def load_model_dir(path: str | Path, device: str | torch.device | None = None,
                   weights: str = WEIGHTS) -> tuple[LanguageModel, Tokenizer, dict[str, Any]]:
    """Load (model, tokenizer, config) from a model directory, ready for inference."""
    path = Path(path)
    config = read_config(path)
    if not (path / TOKENIZER).is_file():
        raise XuxieError(f"{path} has no {TOKENIZER}; the model directory is damaged — retrain or restore it")
    tokenizer = load_tokenizer(path / TOKENIZER)
    wpath = path / weights
    if not wpath.is_file() and weights == WEIGHTS and checkpoints(path):
        wpath = checkpoints(path)[0] / CKPT_WEIGHTS  # killed before its first best weights were written
    if not wpath.is_file():
        raise XuxieError(f"{path} has no {weights} yet: training has not saved a checkpoint; "
                         f"continue it with 'xuxie train --out {path} --resume'")
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
        raise XuxieError(f"cannot read weights {path} ({type(e).__name__}: {detail}); "
                         "the model directory is damaged — retrain or restore it") from None


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


# --------------------------------------------------------------------------- the output folder
def check_out_dir(path: Path, overwrite: bool, corpus_files: Sequence[Path] = ()) -> None:
    """Refuse an --out that training may not write into, before any work: a file or a folder under
    a file; a non-empty folder xuxie did not write (whatever --overwrite says: xuxie replaces only
    its own files); a folder holding the corpus; a trained model without --overwrite. A xuxie
    folder whose run never saved a checkpoint holds nothing to lose and is reused."""
    kind = output_folder_kind(path, f"--out {path}", "choose another --out")
    for f in corpus_files:
        if f.resolve().is_relative_to(path.resolve()):
            raise XuxieError(f"the corpus {f} is inside --out {path}; choose an --out folder that holds no corpus files")
    if kind is None:
        return
    if kind == "export":
        raise XuxieError(f"--out {path} is a Hugging Face export, not a model directory; choose another --out")
    if has_checkpoint(path) and not overwrite:
        raise XuxieError(f"{path} already holds a model; pass --resume to continue it, --overwrite to replace it, or choose another --out")


def start_model_dir(path: Path, tokenizer: Tokenizer, config: dict[str, Any]) -> None:
    """Write a new run's tokenizer.json and config.json. A new folder appears whole (built beside
    it, then renamed), so from its first instant it carries xuxie's marker; in a folder being
    overwritten config.json is replaced last, so it never lacks one either."""
    if path.is_dir() and any(path.iterdir()):
        clear_run(path)
        tokenizer.save(path / TOKENIZER)
        write_config(path, config)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):  # from a run killed while starting
        shutil.rmtree(stale, ignore_errors=True)
    tmp = make_temp_dir(path.parent, path.name)
    try:
        tokenizer.save(tmp / TOKENIZER)
        write_config(tmp, config)
        os.replace(tmp, path)  # also replaces an empty folder
        fsync_dir(path.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- checkpoints
CKPT_WEIGHTS = "weights.safetensors"
CKPT_STATE = "trainer_state.pt"


def checkpoints(path: str | Path) -> list[Path]:
    """The complete checkpoints in a model directory, newest first (a folder only gets its
    ``step-N`` name once everything in it is written)."""
    root = Path(path) / CHECKPOINTS
    found = []
    for entry in root.iterdir() if root.is_dir() else ():
        m = _CHECKPOINT_NAME.fullmatch(entry.name)
        if m and entry.is_dir():
            found.append(((int(m[1]), int(m[2] or 0)), entry))
    return [entry for _, entry in sorted(found, reverse=True)]


def save_checkpoint(path: str | Path, model: LanguageModel, trainer_state: dict[str, Any], step: int) -> Path:
    """Write weights and trainer state into a temporary folder, then rename it to ``step-N``:
    all or nothing, whenever the process dies. Older checkpoints beyond the newest
    :data:`KEEP_CHECKPOINTS` are removed only after the new one is in place."""
    from safetensors.torch import save_model

    root = Path(path) / CHECKPOINTS
    root.mkdir(exist_ok=True)
    tmp = make_temp_dir(root, "step")
    try:
        save_model(model, str(tmp / CKPT_WEIGHTS), metadata={"step": str(step)})
        torch.save(trainer_state, tmp / CKPT_STATE)
        for f in (CKPT_WEIGHTS, CKPT_STATE):
            with open(tmp / f, "rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        # The same step saved again (the end of a run, after its last evaluation) goes in beside
        # the earlier save, as step-N.K, and takes the plain name once that one is gone.
        saves = [c for c in checkpoints(path) if _CHECKPOINT_NAME.fullmatch(c.name)[1] == f"{step:09d}"]
        final = root / (f"step-{step:09d}.{_save_number(saves[0]) + 1}" if saves else f"step-{step:09d}")
        os.rename(tmp, final)
        fsync_dir(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _prune(root.parent)
    if final.name != (plain := f"step-{step:09d}"):
        os.rename(final, root / plain)
        final = root / plain
    return final


def _save_number(checkpoint: Path) -> int:
    return int(_CHECKPOINT_NAME.fullmatch(checkpoint.name)[2] or 0)


def _prune(path: Path) -> None:
    """Keep the newest save of each of the :data:`KEEP_CHECKPOINTS` newest steps."""
    kept: set[str] = set()
    for checkpoint in checkpoints(path):  # newest first
        step = _CHECKPOINT_NAME.fullmatch(checkpoint.name)[1]
        if step not in kept and len(kept) < KEEP_CHECKPOINTS:
            kept.add(step)
        else:
            shutil.rmtree(checkpoint, ignore_errors=True)


def _resume_candidates(path: Path) -> list[tuple[Path, Path]]:
    """(weights, trainer state) pairs, newest first; a pre-checkpoint-folder layout last."""
    pairs = [(c / CKPT_WEIGHTS, c / CKPT_STATE) for c in checkpoints(path)]
    if (path / LAST).is_file():
        pairs.append((path / LAST, path / TRAINER_STATE))
    return pairs


def load_checkpoint(path: str | Path, model: LanguageModel, device: torch.device | None = None) -> dict[str, Any] | None:
    """Load the newest checkpoint that is whole into ``model`` and return its trainer state;
    a damaged one is skipped with a warning (the one before it is used). ``None``: the run was
    stopped before its first checkpoint, so it starts again from the beginning."""
    path = Path(path)
    candidates = _resume_candidates(path)
    for weights, state_file in candidates:
        try:
            meta = load_weights(model, weights)
            state = _load_trainer_state(state_file, device)
            if meta.get("step") not in (None, str(json.loads(state["state"])["step"])):
                raise XuxieError(f"{weights} and {state_file.name} are from different steps")
            return state
        except (XuxieError, KeyError, ValueError) as e:
            detail = " ".join(str(e).replace(str(weights.parent) + os.sep, "").split())[:160]
            warnings.warn(f"checkpoint {weights.parent} is damaged ({detail}); trying the one before it", XuxieWarning, stacklevel=2)
    if candidates:
        raise XuxieError(f"every checkpoint in {path} is damaged, so it cannot be resumed; "
                         "train again with --overwrite (or into a new --out)")
    return None


def _load_trainer_state(f: Path, device: torch.device | None = None) -> dict[str, Any]:
    if not f.is_file():
        raise XuxieError(f"{f} is missing")
    try:
        return torch.load(f, map_location=device or "cpu", weights_only=True)
    except Exception as e:  # torch raises several types for damaged files
        raise XuxieError(f"{f} is damaged ({type(e).__name__})") from None


def load_trainer_state(path: str | Path, device: torch.device | None = None) -> dict[str, Any]:
    """The newest checkpoint's trainer state (for inspection; resuming uses :func:`load_checkpoint`)."""
    candidates = _resume_candidates(Path(path))
    if not candidates:
        raise XuxieError(f"{path} has no checkpoint, so there is no trainer state")
    return _load_trainer_state(candidates[0][1], device)


def remove_stale_temporaries(path: str | Path) -> None:
    """Temporary files and folders left by a process killed mid-write: ``.NAME.*.tmp`` for the
    names xuxie writes (a user's own hidden files never match). Call only from the folder's writer."""
    path = Path(path)
    patterns = [(path, f".{glob.escape(name)}.*.tmp") for name in (CONFIG, TOKENIZER, *RUN_FILES)]
    patterns.append((path / CHECKPOINTS, ".step.*.tmp"))
    for folder, pattern in patterns:
        for entry in folder.glob(pattern) if folder.is_dir() else ():
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def clear_run(path: str | Path) -> None:
    """Remove a run's own files (weights, checkpoints, logs) before it is trained again; the
    tokenizer and config.json are replaced next, and any other file in the folder is left alone."""
    path = Path(path)
    remove_stale_temporaries(path)
    for checkpoint in checkpoints(path):
        shutil.rmtree(checkpoint, ignore_errors=True)
    for name in RUN_FILES:
        (path / name).unlink(missing_ok=True)
    try:
        (path / CHECKPOINTS).rmdir()
    except OSError:
        pass  # absent, or holds something that is not ours


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
            have = f"this machine has {count} CUDA device{'s' if count != 1 else ''}"
            have += f" (cuda:0 to cuda:{count - 1})" if count > 1 else ""
            raise XuxieError(f"device '{device}' is not available: {have}; use --device auto or cpu")
    if chosen.type == "mps" and not _mps_available():
        raise XuxieError(f"device '{device}' is not available (Apple GPUs only); use --device auto or cpu")
    return chosen
