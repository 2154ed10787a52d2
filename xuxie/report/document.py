"""A report as one list of blocks — headings, paragraphs, tables, figures, text samples, a
glossary — rendered as Markdown and as self-contained HTML (figures embedded as data URIs).

What the report says is in :mod:`.sections`; how each kind of block looks in each format is here.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = "plain"  # "byline" (under the title), "note" (an aside) or "footer" (after a rule)


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    file: str  # a PNG beside the report
    alt: str  # Markdown's alternative text
    caption: str  # shown under the image in HTML


@dataclass(frozen=True)
class Figures:
    figures: list[Figure]
    grid: bool = False  # HTML: side by side, as many as fit


@dataclass(frozen=True)
class Sample:
    """A labelled text shown exactly as written."""

    label: str
    text: str


@dataclass(frozen=True)
class Glossary:
    entries: list[tuple[str, str]]  # (term, what it means)


Block = Heading | Paragraph | Table | Figure | Figures | Sample | Glossary


# --------------------------------------------------------------------------- Markdown
def to_markdown(blocks: list[Block]) -> str:
    """The blocks as Markdown: each block's lines, one line break between blocks. Headings after
    the first section's get a blank line more, to set sections apart in the plain text."""
    out: list[str] = []
    previous: Block | None = None
    for block in blocks:
        if isinstance(block, Heading):
            opens_body = block.level == 1 or (isinstance(previous, Paragraph) and previous.kind == "byline")
            out.append(("" if opens_body else "\n") + "#" * block.level + f" {block.text}\n")
        else:
            out.extend(_markdown(block))
        previous = block
    return "\n".join(out)


_MD_PARAGRAPH = {"byline": "{}\n", "plain": "\n{}\n", "note": "\n*{}*\n", "footer": "\n---\n*{}*\n"}


def _markdown(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [_MD_PARAGRAPH[block.kind].format(block.text)]
    if isinstance(block, Table):
        return [_md_table(block.headers, block.rows)]
    if isinstance(block, Figure):
        return [f"![{block.alt}]({block.file})\n"]
    if isinstance(block, Figures):
        return [f"![{f.alt}]({f.file})\n" for f in block.figures]
    if isinstance(block, Sample):
        fence = _fence(block.text)
        return [f"\n**{block.label}**\n\n{fence}\n{block.text}\n{fence}\n"]
    if isinstance(block, Glossary):
        return [f"- **{term}**: {text}" for term, text in block.entries]
    raise TypeError(f"not a report block: {block!r}")


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTML
_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif;
       max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .88em; }
th, td { border: 1px solid #ccc; padding: .25em .55em; text-align: left; }
th { background: #f3f3f3; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: .6em; white-space: pre-wrap; word-break: break-word; font-size: .9em; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(460px, 1fr)); gap: .8em; }
figure { margin: .4em 0 .8em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
.note { color: #666; font-style: italic; } .small { font-size: .85em; color: #555; }
"""


def to_html(blocks: list[Block], images: dict[str, bytes], title: str) -> str:
    """The blocks as one HTML page; ``images`` (file name → PNG bytes) holds every figure's file."""
    head = ('<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
    return head + "".join(_html(block, images) for block in blocks) + "</body>\n</html>\n"


_HTML_PARAGRAPH = {"byline": '<p class="small">{}</p>\n', "plain": "<p>{}</p>\n", "note": '<p class="note">{}</p>\n',
                   "footer": '<hr><p class="small">{}</p>\n'}


def _html(block: Block, images: dict[str, bytes]) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_e(block.text)}</h{block.level}>\n"
    if isinstance(block, Paragraph):
        return _HTML_PARAGRAPH[block.kind].format(_e(block.text))
    if isinstance(block, Table):
        return _html_table(block.headers, block.rows)
    if isinstance(block, Figure):
        return _img(block, images)
    if isinstance(block, Figures):
        opening = '<div class="plots">\n' if block.grid else "<div>\n"
        return opening + "".join(_img(f, images) for f in block.figures) + "</div>\n"
    if isinstance(block, Sample):
        return f"<p><b>{_e(block.label)}</b></p>\n<pre>{_e(block.text)}</pre>\n"
    if isinstance(block, Glossary):
        return "<ul>\n" + "".join(f"<li><b>{_e(term)}</b>: {_e(text)}</li>\n" for term, text in block.entries) + "</ul>\n"
    raise TypeError(f"not a report block: {block!r}")


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


_NUMBER = re.compile(r"[-+–]?[\d.,]+%?|–")


def _html_table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if _NUMBER.fullmatch(c) else f"<td>{_e(c)}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>\n"


def _img(figure: Figure, images: dict[str, bytes]) -> str:
    data = base64.b64encode(images[figure.file]).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(figure.caption)}" data-file="{_e(figure.file)}">'
            f"<figcaption>{_e(figure.caption)}</figcaption></figure>\n")
