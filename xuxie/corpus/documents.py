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
        """Split into (train, validation).

        ``text`` mode: the validation part is the last ``val_fraction`` of the text (cut at a
        line break near the boundary when there is one). ``lines`` mode: the last
        ``val_fraction`` of the documents. ``pairs`` mode: the last ``val_fraction`` of the pairs
        (sources and targets stay aligned).
        """
        if not 0.0 <= val_fraction < 1.0:
            raise XuxieError(f"validation fraction must be in [0, 1), got {val_fraction}")
        if self.mode == "pairs":
            return self._split_pairs(val_fraction)
        if val_fraction == 0:
            return self, replace(self, documents=[], labels=None)
        if self.mode == "lines":
            n_val = max(1, round(len(self.documents) * val_fraction))
            if n_val >= len(self.documents):
                raise XuxieError(
                    f"only {len(self.documents)} document(s): too few to hold out a validation "
                    "set; add more lines or pass --val-fraction 0"
                )
            lab = self.labels
            return (
                replace(self, documents=self.documents[:-n_val], labels=lab[:-n_val] if lab else None),
                replace(self, documents=self.documents[-n_val:], labels=lab[-n_val:] if lab else None),
            )
        text = self.text
        cut = int(len(text) * (1.0 - val_fraction))
        return replace(self, documents=[text[:cut]], labels=None), replace(self, documents=[text[cut:]], labels=None)

    def _split_pairs(self, val_fraction: float) -> tuple[Corpus, Corpus]:
        targets = self.targets or []
        if len(targets) != len(self.documents):
            raise XuxieError(f"pairs corpus has {len(self.documents)} sources but {len(targets)} targets; "
                             "build it with read_pairs or continuation_pairs")

        def part(lo: int, hi: int | None) -> Corpus:
            return replace(self, documents=self.documents[lo:hi], labels=None, targets=targets[lo:hi])

        if val_fraction == 0:
            return self, part(len(targets), None)
        n_val = max(1, round(len(targets) * val_fraction))
        if n_val >= len(targets):
            raise XuxieError(
                f"only {len(targets)} pair(s): too few to hold out a validation set; "
                "add more pairs or pass --val-fraction 0"
            )
        return part(0, -n_val), part(len(targets) - n_val, None)


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
