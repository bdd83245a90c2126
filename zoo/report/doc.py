"""A small document model and its two renderers. The report is built once as blocks; HTML and Markdown
are two renderings of the same blocks, so the two files cannot say different things.

Inline text may use ``code`` and **bold**; everything else is escaped.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field


@dataclass
class Para:
    text: str
    kind: str = "text"  # text | lead (the answer) | note (not run, how to run it) | warn (a flag)


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    numeric: list[int] = field(default_factory=list)  # columns aligned right


@dataclass
class Image:
    """A PNG. In HTML it is a data URI; beside the Markdown it is a file under ``report_files/``."""

    name: str  # file name, unique in the report
    png: bytes
    caption: str
    alt: str = ""
    width: int | None = None  # display width in CSS pixels (thumbnails); None: up to the page width


@dataclass
class Gallery:
    images: list[Image]
    caption: str = ""


@dataclass
class Code:
    text: str
    lang: str = "python"


Block = Para | Bullets | Table | Image | Gallery | Code


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def images(self) -> list[Image]:
        out: list[Image] = []
        for s in self.sections:
            for b in s.blocks:
                if isinstance(b, Image):
                    out.append(b)
                elif isinstance(b, Gallery):
                    out.extend(b.images)
        return out


# ---------------------------------------------------------------------------------------------
# HTML

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")

CSS = """
:root { --fg: #1d2430; --muted: #5b6577; --line: #d9dee7; --accent: #1f5fbf; --warn: #9a4b00;
        --warnbg: #fff4e5; --notebg: #f1f4f9; --leadbg: #eaf2ff; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans",
       "DejaVu Sans", sans-serif; color: var(--fg); margin: 0; background: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
.subtitle { color: var(--muted); margin: 0 0 16px; }
nav { font-size: 13px; color: var(--muted); margin-bottom: 8px; }
nav a { color: var(--accent); text-decoration: none; margin-right: 12px; }
p { margin: 8px 0; }
p.lead { font-size: 17px; background: var(--leadbg); border-left: 4px solid var(--accent); padding: 10px 14px; }
p.note { background: var(--notebg); border-left: 4px solid #8a96aa; padding: 8px 12px; color: #2f3a4c; }
p.warn { background: var(--warnbg); border-left: 4px solid var(--warn); padding: 8px 12px; }
code { font: 13px/1.4 "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #f3f5f8; padding: 1px 4px;
       border-radius: 3px; }
pre { background: #0f1724; color: #e6edf6; padding: 14px 16px; border-radius: 6px; overflow-x: auto; }
pre code { background: none; color: inherit; padding: 0; }
table { border-collapse: collapse; margin: 10px 0 14px; font-size: 13.5px; width: 100%; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
td.long { overflow-wrap: anywhere; }
td.num, th.num { white-space: nowrap; }
.tbl { overflow-x: auto; }
th { background: #f6f8fb; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
.gallery figure { margin: 0; text-align: center; }
.gallery figcaption { max-width: 120px; overflow-wrap: anywhere; }
ul { margin: 6px 0 10px; padding-left: 22px; }
"""


def _inline_html(text: str) -> str:
    out = html.escape(text, quote=False)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    return _BOLD.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def _img_html(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    width = f' width="{img.width}"' if img.width else ""
    alt = html.escape(img.alt or img.caption)
    return f'<img src="data:image/png;base64,{data}" alt="{alt}"{width}>'


def _block_html(b: Block) -> str:
    if isinstance(b, Para):
        cls = f' class="{b.kind}"' if b.kind != "text" else ""
        return f"<p{cls}>{_inline_html(b.text)}</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{_inline_html(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Table):
        def cell(tag: str, i: int, v: str) -> str:
            # Long unbroken words (model ids, paths, hashes) may wrap anywhere so a wide table still fits
            # the page; numbers and short words never do.
            cls = "num" if i in b.numeric else "long" if len(v) > 24 and " " not in v else ""
            attr = f' class="{cls}"' if cls else ""
            return f"<{tag}{attr}>{_inline_html(v)}</{tag}>"

        cap = f"<caption>{_inline_html(b.caption)}</caption>" if b.caption else ""
        head = "<tr>" + "".join(cell("th", i, h) for i, h in enumerate(b.headers)) + "</tr>"
        body = "".join("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in b.rows)
        return f'<div class="tbl"><table>{cap}<thead>{head}</thead><tbody>{body}</tbody></table></div>'
    if isinstance(b, Image):
        return f"<figure>{_img_html(b)}<figcaption>{_inline_html(b.caption)}</figcaption></figure>"
    if isinstance(b, Gallery):
        figs = "".join(f"<figure>{_img_html(i)}<figcaption>{_inline_html(i.caption)}</figcaption></figure>"
                       for i in b.images)
        cap = f"<p>{_inline_html(b.caption)}</p>" if b.caption else ""
        return f'{cap}<div class="gallery">{figs}</div>'
    if isinstance(b, Code):
        return f'<pre><code class="language-{b.lang}">{html.escape(b.text, quote=False)}</code></pre>'
    raise TypeError(f"unknown block {type(b).__name__}")


def to_html(doc: Document) -> str:
    """One self-contained page: inline CSS, images as data URIs, and a content security policy that
    forbids the page from loading anything at all, so it reads the same with no network."""
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in doc.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        'style-src \'unsafe-inline\'">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>{_inline_html(doc.title)}</h1>",
        f'<p class="subtitle">{_inline_html(doc.subtitle)}</p>',
        f"<nav>{nav}</nav>",
    ]
    for s in doc.sections:
        parts.append(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>')
        parts.extend(_block_html(b) for b in s.blocks)
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------
# Markdown


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_text(text: str) -> str:
    # Markdown would read stray markup in names ("<", a leading "#") as formatting: escape the bits
    # that change meaning and keep ``code`` / **bold** as written.
    # Inside a code span an entity would show literally, so only the text between spans is escaped.
    parts = re.split(r"(`[^`]+`)", text)
    return "".join(p if p.startswith("`") and p.endswith("`") and len(p) > 1 else p.replace("<", "&lt;")
                   for p in parts)


def _block_md(b: Block, files_dir: str) -> str:
    if isinstance(b, Para):
        text = _md_text(b.text)
        return f"> {text}" if b.kind in ("lead", "note", "warn") else text
    if isinstance(b, Bullets):
        return "\n".join(f"- {_md_text(i)}" for i in b.items)
    if isinstance(b, Table):
        head = "| " + " | ".join(_md_cell(h) for h in b.headers) + " |"
        sep = "| " + " | ".join("---:" if i in b.numeric else "---" for i in range(len(b.headers))) + " |"
        rows = ["| " + " | ".join(_md_cell(_md_text(v)) for v in r) + " |" for r in b.rows]
        cap = f"*{_md_text(b.caption)}*\n\n" if b.caption else ""
        return cap + "\n".join([head, sep, *rows])
    if isinstance(b, Image):
        return f"![{_md_cell(b.alt or b.caption)}]({files_dir}/{b.name})\n\n*{_md_text(b.caption)}*"
    if isinstance(b, Gallery):
        imgs = " ".join(f"![{_md_cell(i.caption)}]({files_dir}/{i.name})" for i in b.images)
        return (f"{_md_text(b.caption)}\n\n" if b.caption else "") + imgs
    if isinstance(b, Code):
        return f"```{b.lang}\n{b.text.rstrip()}\n```"
    raise TypeError(f"unknown block {type(b).__name__}")


def to_markdown(doc: Document, files_dir: str) -> str:
    """The same blocks as Markdown; images are referenced as files in ``files_dir`` (relative)."""
    parts = [f"# {_md_text(doc.title)}", f"*{_md_text(doc.subtitle)}*"]
    for s in doc.sections:
        parts.append(f"## {s.title}")
        parts.extend(_block_md(b, files_dir) for b in s.blocks)
    return "\n\n".join(parts) + "\n"
