"""Bytes to text: the encoding of a corpus file, detected (or forced), and line endings normalised.

Knows nothing of files or corpora: :func:`decode_bytes` takes bytes and a name for messages.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
import warnings

from ..errors import XuxieError, XuxieWarning

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CANDIDATES = ["gb18030", "big5", "cp1252", "latin_1"]  # in order of preference on a tie


class NotText(XuxieError):
    """The bytes are not text in any encoding (a binary file): skipped inside a folder, an error when named."""


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


def _utf8_cut_short(data: bytes) -> str | None:
    """UTF-8 whose only fault is an incomplete last character (a file cut with ``head -c`` or a
    truncated download): the text without that partial character."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.reason == "unexpected end of data" and e.end == len(data) and len(data) - e.start < 4:
            return _strict(data[: e.start], "utf-8")
    return None


_INVALID_UTF8 = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of each byte that is not UTF-8
MOSTLY_UTF8 = 100  # valid non-ASCII bytes per invalid byte from which a file is UTF-8 with damage


def _mostly_utf8(data: bytes, name: str) -> str | None:
    """UTF-8 with a few invalid bytes (a damaged download, a bad copy-paste): each becomes U+FFFD,
    with one warning, rather than the whole file being re-read as Latin-1. It needs real UTF-8
    around the damage — at least :data:`MOSTLY_UTF8` valid non-ASCII bytes per invalid one — so a
    cp1252 file with a single curly quote still goes to encoding detection."""
    text = data.decode("utf-8", errors="surrogateescape")
    invalid = len(_INVALID_UTF8.findall(text))
    non_ascii = len(data.translate(None, bytes(range(128))))
    if not invalid or non_ascii - invalid < MOSTLY_UTF8 * invalid:
        return None
    first = len(text[:_INVALID_UTF8.search(text).start()].encode("utf-8", errors="surrogateescape"))  # a byte offset
    warnings.warn(f"{name} is UTF-8 with {invalid} invalid byte{'s' if invalid > 1 else ''} (the first at byte {first}); "
                  "each became \ufffd — pass --encoding to read it another way", XuxieWarning, stacklevel=2)
    return _INVALID_UTF8.sub("\ufffd", text)


def decode_bytes(data: bytes, encoding: str | None = None, name: str = "<bytes>") -> tuple[str, str]:
    """Decode ``data`` to text; returns (text, encoding used).

    Order: forced ``encoding``; a byte-order mark (UTF-8/16/32); strict UTF-8; UTF-8 with a few
    invalid bytes (replaced, with a warning); UTF-16 recognised by
    its NUL bytes; otherwise each of GB18030 (a superset of GBK/GB2312), Big5, UTF-16, cp1252 and
    Latin-1 that decodes the bytes without error, the most plausible chosen by charset-normalizer.
    (charset-normalizer alone rejects some real Big5 text, measured on 红楼梦, so it only ranks
    candidates that decode cleanly.)
    """
    if encoding:
        return _decode_as(data, encoding, name)
    for bom, enc in _BOMS:
        if data.startswith(bom):
            text = _strict(data, enc)
            if text is not None:
                return text, enc
            break
    text = _strict(data, "utf-8")
    if text is not None:
        return text, "utf-8"
    text = _utf8_cut_short(data)
    if text is not None:
        return text, "utf-8"
    text = _mostly_utf8(data, name)
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
        raise NotText(
            f"{name} does not look like text (a binary file?); give a text file, or force the encoding with --encoding"
        )
    return _most_plausible(data, name)


def _decode_as(data: bytes, encoding: str, name: str) -> tuple[str, str]:
    """``data`` in the encoding the user forced, or one line saying why not."""
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


def _most_plausible(data: bytes, name: str) -> tuple[str, str]:
    """The candidate encoding charset-normalizer ranks best among those that decode ``data``
    cleanly (the first of :data:`_CANDIDATES` when it ranks none)."""
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
