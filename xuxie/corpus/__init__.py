"""Reading corpora: files, folders, named corpora; encoding detection; modes; validation split.

This package knows nothing about tensors (it never imports torch). It turns what the user points at into a
:class:`Corpus`: a list of documents (strings) plus the mode they were read in.

Modes
-----
``text``
    The input is one continuous text (several files are joined by a blank line).
``lines``
    Every non-empty line is a document (a headline, a poem, a tweet). Models are trained with
    ``<bos>`` before and ``<eos>`` after each document, so generation writes whole documents
    and stops by itself.
``pairs``
    Source→target pairs for an encoder–decoder: ``documents[i]`` is a source and ``targets[i]``
    its target. Read from ``.tsv`` files (one ``source<TAB>target`` per line, an optional
    ``source<TAB>target`` header) or ``.jsonl`` files (one ``{"source": …, "target": …}`` object
    per line; strings may span several lines). See :func:`read_pairs`.
``continuation``
    A plain text (a novel) turned into ``pairs``: each paragraph (or group of sentences) is the
    source and the next one its target. The corpus has mode ``pairs`` and ``pairs_from`` tells
    how it was made. See :func:`continuation_pairs`.

Modules: :mod:`~xuxie.corpus.documents` (the :class:`Corpus` type and its split),
:mod:`~xuxie.corpus.reading` (:func:`read_corpus`, :func:`corpus_from_text`),
:mod:`~xuxie.corpus.sources` (finding and reading files), :mod:`~xuxie.corpus.encoding` (bytes to
text), :mod:`~xuxie.corpus.named` (named corpora), :mod:`~xuxie.corpus.tables` (labelled tables and
pairs files), :mod:`~xuxie.corpus.continuation` (pairs from a plain text).
"""

from .continuation import UNITS, continuation_pairs, split_sentences
from .documents import MODES, Corpus, documents_from_text
from .encoding import MOSTLY_UTF8, NotText, decode_bytes, normalize_text
from .named import NAMED_CORPORA, data_dir, resolve_named_corpus
from .reading import corpus_from_text, read_corpus
from .sources import BINARY_SHOWN, TEXT_SUFFIXES, read_text_file
from .tables import PAIR_SUFFIXES, TABLE_SUFFIXES, read_labelled, read_pairs

__all__ = [
    "BINARY_SHOWN", "MODES", "MOSTLY_UTF8", "NAMED_CORPORA", "PAIR_SUFFIXES", "TABLE_SUFFIXES", "TEXT_SUFFIXES", "UNITS",
    "Corpus", "NotText", "continuation_pairs", "corpus_from_text", "data_dir", "decode_bytes", "documents_from_text",
    "normalize_text", "read_corpus", "read_labelled", "read_pairs", "read_text_file", "resolve_named_corpus",
    "split_sentences",
]
