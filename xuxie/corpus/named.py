"""Named corpora (``tinyshakespeare``, ``hongloumeng``): where they live, and their one-time download.

A name given in place of a path resolves to a file in :func:`data_dir`; a missing file is
downloaded once and kept only when its SHA-256 is the one recorded here.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import XuxieError

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


def data_dir() -> Path:
    """Folder where named corpora live: $XUXIE_DATA_DIR, ../shared/corpora, or ~/.cache/xuxie."""
    env = os.environ.get("XUXIE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[3] / "shared" / "corpora"  # beside the repository
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
