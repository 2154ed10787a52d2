"""Reading corpora: files, folders, named corpora; encoding detection; modes; validation split.

This module knows nothing about tensors. It turns what the user points at into a
:class:`Corpus`: a list of documents (strings) plus the mode they were read in.

Modes
-----
``text``
    The input is one continuous text (several files are joined by a blank line).
``lines``
    Every non-empty line is a document (a headline, a poem, a tweet). Models are trained with
    ``<bos>`` before and ``<eos>`` after each document, so generation writes whole documents
    and stops by itself.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import tempfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import XuxieError

MODES = ("text", "lines")
TEXT_SUFFIXES = {".txt", ".text", ".md", ".csv", ".tsv", ".json", ".jsonl", ".rst", ""}

#: Named corpora usable in place of a path: name -> (file name, public source, sha256).
NAMED_CORPORA = {
    "tinyshakespeare": (
        "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
    "hongloumeng": (
        "hongloumeng.txt",
        "https://raw.githubusercontent.com/tennessine/corpus/master/%E7%BA%A2%E6%A5%BC%E6%A2%A6.txt",
        "5eca888fb54188d644df70fa555dd3c9cbdd3a8d7b3034fb59f7a81e16f05dc7",
    ),
}

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CANDIDATES = ["gb18030", "big5", "cp1252", "latin_1"]  # in order of preference on a tie


@dataclass
class Corpus:
    """Documents read from one or more files, in one mode."""

    documents: list[str]
    mode: str = "text"
    sources: tuple[str, ...] = ()
    encodings: tuple[str, ...] = ()
    labels: list[str | None] | None = None  # context label of each document (lines mode), None: unlabelled

    @property
    def text(self) -> str:
        return "\n\n".join(self.documents) if self.mode == "text" else "\n".join(self.documents)

    @property
    def n_chars(self) -> int:
        return sum(len(d) for d in self.documents)

    def fingerprint(self) -> str:
        h = hashlib.sha256(self.mode.encode())
        for d in self.documents:
            h.update(b"\x00")
            h.update(d.encode("utf-8"))
        return h.hexdigest()

    def split(self, val_fraction: float = 0.1) -> tuple[Corpus, Corpus]:
        """Split into (train, validation).

        ``text`` mode: the validation part is the last ``val_fraction`` of the text (cut at a
        line break near the boundary when there is one). ``lines`` mode: the last
        ``val_fraction`` of the documents.
        """
        if not 0.0 <= val_fraction < 1.0:
            raise XuxieError(f"validation fraction must be in [0, 1), got {val_fraction}")
        if val_fraction == 0:
            return self, Corpus([], self.mode, self.sources, self.encodings)
        if self.mode == "lines":
            n_val = max(1, round(len(self.documents) * val_fraction))
            if n_val >= len(self.documents):
                raise XuxieError(
                    f"only {len(self.documents)} document(s): too few to hold out a validation "
                    "set; add more lines or pass --val-fraction 0"
                )
            lab = self.labels
            return (
                Corpus(self.documents[:-n_val], "lines", self.sources, self.encodings, lab[:-n_val] if lab else None),
                Corpus(self.documents[-n_val:], "lines", self.sources, self.encodings, lab[-n_val:] if lab else None),
            )
        text = self.text
        cut = int(len(text) * (1.0 - val_fraction))
        return (
            Corpus([text[:cut]], "text", self.sources, self.encodings),
            Corpus([text[cut:]], "text", self.sources, self.encodings),
        )


# --------------------------------------------------------------------------- named corpora
def data_dir() -> Path:
    """Folder where named corpora live: $XUXIE_DATA_DIR, ../shared/corpora, or ~/.cache/xuxie."""
    env = os.environ.get("XUXIE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[2] / "shared" / "corpora"
    if shared.is_dir():
        return shared
    return Path.home() / ".cache" / "xuxie"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resolve_named_corpus(name: str, download: bool = True) -> Path:
    """Path of a named corpus, downloading it once (and checking its SHA-256) if missing."""
    fname, url, digest = NAMED_CORPORA[name]
    folder = data_dir()
    path = folder / fname
    if path.is_file():
        return path
    if not download:
        raise XuxieError(f"named corpus '{name}' is not in {folder}; set XUXIE_DATA_DIR to a folder holding {fname}")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{fname}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        got = _sha256(Path(tmp))
        if got != digest:
            raise XuxieError(
                f"downloaded '{name}' has SHA-256 {got[:12]}…, expected {digest[:12]}…; "
                f"the source changed or the download was damaged — put the file in {folder} yourself"
            )
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise XuxieError(
            f"could not download corpus '{name}' from {url} ({e}); you may be offline — "
            f"download it yourself to {path} or set XUXIE_DATA_DIR to a folder holding {fname}"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- decoding bytes
def _looks_binary(data: bytes) -> bool:
    sample = data[:65536]
    if not sample:
        return False
    # Control bytes other than tab/newline/carriage return/form feed/escape are rare in text.
    bad = sum(1 for b in sample if b < 32 and b not in (9, 10, 12, 13, 27))
    return bad / len(sample) > 0.01


def _plausible(text: str) -> float:
    """Share of characters that are assigned, non-private, and not control codes (tab/newline aside)."""
    sample = text[:20000]
    if not sample:
        return 0.0
    bad = sum(1 for c in sample if unicodedata.category(c) in ("Cn", "Co", "Cs", "Cc") and c not in "\t\n\r\f")
    return 1.0 - bad / len(sample)


def _utf16_guess(data: bytes, need_nul: bool = True) -> tuple[str, str] | None:
    """UTF-16 without a BOM: the byte order whose strict decoding is (nearly) all assigned text.

    Asked only when there are NUL bytes (any newline, space or ASCII letter in UTF-16 has one, and
    GBK/Big5/Latin text has none): GBK byte pairs read as UTF-16 are valid Hangul, so without that
    evidence short Chinese texts would be misread.
    """
    if len(data) < 2 or len(data) % 2 or (need_nul and b"\x00" not in data):
        return None
    scored = [(_plausible(t), enc, t) for enc in ("utf_16_le", "utf_16_be") if (t := _strict(data, enc)) is not None]
    scored = [x for x in scored if x[0] >= 0.98]
    if not scored:
        return None
    _, enc, text = max(scored, key=lambda x: x[0])
    return text, enc


def _strict(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def decode_bytes(data: bytes, encoding: str | None = None, name: str = "<bytes>") -> tuple[str, str]:
    """Decode ``data`` to text; returns (text, encoding used).

    Order: forced ``encoding``; a byte-order mark (UTF-8/16/32); strict UTF-8; UTF-16 recognised by
    its NUL bytes; otherwise each of GB18030 (a superset of GBK/GB2312), Big5, UTF-16, cp1252 and
    Latin-1 that decodes the bytes without error, the most plausible chosen by charset-normalizer.
    (charset-normalizer alone rejects some real Big5 text, measured on 红楼梦, so it only ranks
    candidates that decode cleanly.)
    """
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise XuxieError(f"unknown encoding '{encoding}' (try utf-8, gb18030, gbk, big5, utf-16)") from None
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError as e:
            raise XuxieError(
                f"{name} is not valid {encoding} (byte {e.start}); drop --encoding to detect it automatically"
            ) from None
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = _strict(data, enc)
            if text is not None:
                return text, enc
            break
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    utf16 = _utf16_guess(data)
    if utf16 is not None:
        return utf16
    if _looks_binary(data):
        # Chinese UTF-16 with no ASCII at all has no NUL but many low bytes.
        utf16 = _utf16_guess(data, need_nul=False)
        if utf16 is not None:
            return utf16
        raise XuxieError(
            f"{name} does not look like text (a binary file?); give a text file, or force the encoding with --encoding"
        )
    decoded = {enc: t for enc in _CANDIDATES if (t := _strict(data, enc)) is not None}
    if len(decoded) > 1:
        from charset_normalizer import from_bytes

        best = from_bytes(data, cp_isolation=list(decoded), threshold=1.0).best()
        if best is not None and best.encoding in decoded:
            return decoded[best.encoding], best.encoding
    if decoded:
        enc = next(iter(decoded))
        return decoded[enc], enc
    raise XuxieError(f"{name} is not text in any known encoding; force one with --encoding (e.g. gb18030, big5, utf-16)")


def normalize_text(text: str) -> str:
    """CRLF/CR → LF; drop the BOM and NUL; keep everything else as written."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").replace("\x00", "")


# --------------------------------------------------------------------------- reading
def _expand(paths: list[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        sp = str(p)
        if sp in NAMED_CORPORA and not Path(sp).exists():
            files.append(resolve_named_corpus(sp))
            continue
        path = Path(sp).expanduser()
        if path.is_dir():
            found = sorted(
                f for f in path.rglob("*")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(path).parts)
                and f.suffix.lower() in TEXT_SUFFIXES
            )
            if not found:
                raise XuxieError(f"folder {path} holds no text files (.txt, .md, …); point at a file or a folder of them")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            names = ", ".join(NAMED_CORPORA)
            raise XuxieError(f"corpus '{sp}' does not exist; give a file, a folder, or a named corpus ({names})")
    return files


def read_text_file(path: Path, encoding: str | None = None) -> tuple[str, str]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise XuxieError(f"cannot read {path}: {e.strerror}") from None
    text, enc = decode_bytes(data, encoding, name=str(path))
    return normalize_text(text), enc


def documents_from_text(text: str, mode: str) -> list[str]:
    if mode not in MODES:
        raise XuxieError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")
    if mode == "lines":
        return [line.strip() for line in text.split("\n") if line.strip()]
    return [text] if text.strip() else []


def read_corpus(paths: str | Path | list[str | Path], mode: str = "text", encoding: str | None = None) -> Corpus:
    """Read one or more files/folders (or named corpora) into a :class:`Corpus`."""
    if mode not in MODES:
        raise XuxieError(f"unknown mode '{mode}'; choose one of: {', '.join(MODES)}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = _expand(list(paths))
    docs: list[str] = []
    encs: list[str] = []
    for f in files:
        text, enc = read_text_file(f, encoding)
        docs.extend(documents_from_text(text, mode))
        encs.append(enc)
    if not docs:
        where = ", ".join(str(f) for f in files)
        raise XuxieError(f"corpus {where} is empty or only whitespace; give a file with text in it")
    return Corpus(docs, mode, tuple(str(f) for f in files), tuple(encs))


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def read_labelled(paths: str | Path | list[str | Path], label_column: str, text_column: str = "text",
                  encoding: str | None = None) -> Corpus:
    """Documents with a context label from CSV, TSV or JSON-lines files (``lines`` mode).

    Every row is a document: its ``text_column`` is the text, its ``label_column`` the label (an
    empty label leaves the document unlabelled). Rows with empty text are skipped.
    """
    import csv
    import io
    import json

    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = _expand(list(paths))
    docs: list[str] = []
    labels: list[str | None] = []
    encs: list[str] = []
    for f in files:
        if f.suffix.lower() not in TABLE_SUFFIXES:
            raise XuxieError(f"{f}: a labelled corpus must be a .csv, .tsv or .jsonl file (got '{f.suffix}')")
        text, enc = read_text_file(f, encoding)
        encs.append(enc)
        if f.suffix.lower() == ".jsonl":
            rows = []
            for n, line in enumerate(text.split("\n"), 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError as e:
                        raise XuxieError(f"{f} line {n} is not JSON ({e}); give one JSON object per line") from None
                    if not isinstance(row, dict):
                        raise XuxieError(f"{f} line {n} is not a JSON object; give one object per line")
                    rows.append(row)
            columns = sorted({k for r in rows for k in r})
        else:
            reader = csv.DictReader(io.StringIO(text), delimiter="\t" if f.suffix.lower() == ".tsv" else ",")
            rows = list(reader)
            columns = list(reader.fieldnames or [])
        if not rows:
            raise XuxieError(f"{f} holds no rows; give a file with a header line and at least one row")
        for col in (text_column, label_column):
            if col not in columns:
                raise XuxieError(f"{f} has no column '{col}'; its columns are: {', '.join(map(str, columns)) or '(none)'}")
        for r in rows:
            doc = " ".join(str(r.get(text_column) or "").split("\n")).strip()
            if doc:
                docs.append(doc)
                label = str(r.get(label_column) or "").strip()
                labels.append(label or None)
    if not docs:
        raise XuxieError(f"{', '.join(map(str, files))} has no rows with text in column '{text_column}'")
    if not any(labels):
        raise XuxieError(f"column '{label_column}' is empty in every row; give labels or train without --label-column")
    return Corpus(docs, "lines", tuple(str(f) for f in files), tuple(encs), labels)


def corpus_from_text(text: str, mode: str = "text") -> Corpus:
    docs = documents_from_text(normalize_text(text), mode)
    if not docs:
        raise XuxieError("the text is empty or only whitespace; give some text to train on")
    return Corpus(docs, mode, ("<text>",), ("str",))
