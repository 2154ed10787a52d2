"""The :class:`Corpus` type: documents in one mode, where they came from, and its validation split.

See :mod:`xuxie.corpus` for what the modes mean.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from ..errors import XuxieError

MODES = ("text", "lines", "pairs", "continuation")


@dataclass
class Corpus:
    """Documents read from one or more files, in one mode (in ``pairs`` mode: sources, with ``targets``).

    ``sources`` are the absolute paths of the files read (``"<text>"`` for a string), and
    ``source_hashes`` the SHA-256 of each one's bytes as read (of a string: its UTF-8), in the same
    order, so a run can record exactly what it was trained on and tell when a file changed.
    """

    documents: list[str]
    mode: str = "text"
    sources: tuple[str, ...] = ()
    encodings: tuple[str, ...] = ()
    labels: list[str | None] | None = None  # context label of each document (lines mode), None: unlabelled
    targets: list[str] | None = None  # pairs mode: targets[i] is the target of documents[i] (the source)
    pairs_from: str | None = None  # pairs mode: "files", or "continuation:paragraph" / "continuation:sentences=N"
    source_hashes: tuple[str, ...] = ()  # SHA-256 hex digest of each of ``sources``

    @property
    def text(self) -> str:
        """All the text: documents (and, in pairs mode, every source and target) joined by line breaks."""
        if self.mode == "pairs":
            return "\n".join(x for pair in zip(self.documents, self.targets or []) for x in pair)
        return "\n\n".join(self.documents) if self.mode == "text" else "\n".join(self.documents)

    @property
    def label_names(self) -> list[str]:
        """The context labels of the documents, sorted (none when unlabelled)."""
        return sorted({lab for lab in self.labels or () if lab})

    @property
    def n_documents(self) -> int:
        return len(self.documents)

    @property
    def n_chars(self) -> int:
        """Characters in the documents (in pairs mode: in the sources and the targets)."""
        return sum(len(d) for d in self.documents) + sum(len(t) for t in self.targets or [])

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.mode.encode())
        for d in self.documents:
            h.update(b"\x00")
            h.update(d.encode("utf-8"))
        if self.targets is not None:
            h.update(b"\x01targets")
            for t in self.targets:
                h.update(b"\x00")
                h.update(t.encode("utf-8"))
        return h.hexdigest()

    def split(self, val_fraction: float = 0.1) -> tuple[Corpus, Corpus]:
        """Split into (train, validation) at :func:`validation_start`: ``text`` mode, the last
        ``val_fraction`` of the text; ``lines`` mode, of the documents; ``pairs`` mode, of the
        pairs (sources and targets stay aligned)."""
        if self.mode == "pairs":
            targets = self.targets or []
            if len(targets) != len(self.documents):
                raise XuxieError(f"pairs corpus has {len(self.documents)} sources but {len(targets)} targets; "
                                 "build it with read_pairs or continuation_pairs")
            cut = validation_start(len(targets), val_fraction, "pair")
            return (replace(self, documents=self.documents[:cut], labels=None, targets=targets[:cut]),
                    replace(self, documents=self.documents[cut:], labels=None, targets=targets[cut:]))
        if self.mode == "lines":
            cut = validation_start(len(self.documents), val_fraction, "document")
            lab = self.labels
            return (replace(self, documents=self.documents[:cut], labels=lab[:cut] if lab else None),
                    replace(self, documents=self.documents[cut:], labels=lab[cut:] if lab else None))
        text = self.text
        cut = validation_start(len(text), val_fraction, None)
        return (replace(self, documents=[text[:cut]], labels=None),
                replace(self, documents=[text[cut:]] if cut < len(text) else [], labels=None))


def validation_start(n: int, val_fraction: float, unit: str | None) -> int:
    """Where the validation part of ``n`` items begins: for characters of a text (``unit`` None),
    the last ``val_fraction`` of them; for documents or pairs, the last ``round(n × val_fraction)``,
    at least one, and at least one left to train on. The one rule of every split, in memory or streamed."""
    if not 0.0 <= val_fraction < 1.0:
        raise XuxieError(f"validation fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0:
        return n
    if unit is None:
        return int(n * (1.0 - val_fraction))
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        plural = "es" if unit.endswith("s") else "s"
        raise XuxieError(f"only {n} {unit}(s): too few to hold out a validation set; add more {unit}{plural} or pass --val-fraction 0")
    return n - n_val


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise XuxieError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")


def documents_from_text(text: str, mode: str) -> list[str]:
    check_mode(mode)
    if mode in ("pairs", "continuation"):
        raise XuxieError(f"mode '{mode}' makes source→target pairs, not documents; use read_corpus or corpus_from_text")
    if mode == "lines":
        return [line.strip() for line in text.split("\n") if line.strip()]
    return [text] if text.strip() else []


def string_provenance(text: str) -> dict[str, tuple[str, ...]]:
    """The :class:`Corpus` fields saying where its text came from, for a text given as a string
    rather than a file (see :func:`xuxie.corpus.sources.provenance` for files)."""
    return {"sources": ("<text>",), "encodings": ("str",),
            "source_hashes": (hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),)}
