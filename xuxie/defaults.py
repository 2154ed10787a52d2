"""Each architecture's defaults in words, for ``xuxie train --help`` and README's table, read from
where they are declared: the model families' configs (``xuxie/models/``: the dataclass fields, and
``train_defaults`` / ``derived_train_defaults`` beside them) and :class:`~xuxie.training.TrainConfig`.

``python -m xuxie.defaults`` prints README's table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .models.base import REGISTRY, default_config, families
from .training import TrainConfig


def show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def by_arch(values: dict[str, str]) -> str:
    """``"default 512; attention-rnn, seq2seq 256; transformer 128"``: one value per architecture,
    the value most architectures share first as the default."""
    groups: dict[str, list[str]] = {}
    for arch, value in values.items():
        groups.setdefault(value, []).append(arch)
    (first, _), *rest = sorted(groups.items(), key=lambda group: -len(group[1]))  # a stable sort: ties keep their order
    head = f"default{': ' if ' ' in first else ' '}{first}"
    return "; ".join([head, *(f"{', '.join(archs)} {value}" for value, archs in rest)])


def model_default(field_of: Callable[[str], str | None], unset: str = "") -> str:
    """A model option's default in every architecture that has it: ``field_of(arch)`` names the
    option's config field in ``arch`` (``None``: ``arch`` has no such option); ``unset`` describes a
    ``None`` default (one the model derives)."""
    values = {}
    for archs in families().values():
        for arch in archs:
            if (name := field_of(arch)) is not None:
                value = getattr(default_config(arch), name)
                values[arch] = unset if value is None else show(value)
    return by_arch(values)


def train_default(name: str) -> str:
    """A training setting's default, then each family's own value or rule where it has one."""
    base = getattr(TrainConfig, name)
    parts = [f"default {show(base)}"]
    for config, archs in families().items():
        if name in config.train_defaults and config.train_defaults[name] != base:
            parts.append(f"{', '.join(archs)} {show(config.train_defaults[name])}")
        if name in config.derived_train_defaults:
            parts.append(f"{', '.join(archs)}: {config.derived_train_defaults[name]}")
    return "; ".join(parts)


def defaults_table() -> str:
    """README's table: each family's model defaults and the training settings it changes."""
    rows = ["| architecture | model defaults | training, where it differs from the defaults above |", "|---|---|---|"]
    for config, archs in families().items():
        fixed = REGISTRY[archs[0]][1]
        model = default_config(archs[0])
        sizes = [f"{f.name} {show(getattr(model, f.name)) if getattr(model, f.name) is not None else 'auto'}"
                 for f in dataclasses.fields(model) if f.name not in ("vocab_size", "extra", *fixed)]
        train = [f"{k} {show(v)}" for k, v in config.train_defaults.items()]
        train += [f"{k}: {rule}" for k, rule in config.derived_train_defaults.items()]
        rows.append(f"| {', '.join(archs)} | {', '.join(sizes)} | {'; '.join(train) or '—'} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(defaults_table(), end="")
