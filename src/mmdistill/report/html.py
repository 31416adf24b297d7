"""Small HTML building blocks for the self-contained report pages (no templates, no external requests).

Every dynamic string goes through :func:`esc`. Images and audio are inlined as ``data:`` URIs, the
stylesheet is inline, and there is no script at all, so a page opens offline and a browser logs nothing.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from .. import __version__
from ..io import atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1b1f24;background:#fafbfc}
header{background:#24292f;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:20px} header p{margin:4px 0 0;color:#c9d1d9;font-size:13px}
nav{padding:8px 24px;background:#eef1f4;font-size:13px} nav a{margin-right:14px;color:#0550ae}
main{padding:8px 24px 40px;max-width:1200px}
section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 18px 16px;margin:16px 0}
h2{font-size:17px;margin:6px 0 10px} h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f5f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#57606a;font-size:13px} .warn{color:#9a6700;background:#fff8c5;padding:6px 10px;border-radius:4px}
.cards{display:flex;flex-wrap:wrap;gap:12px} .card{border:1px solid #d0d7de;border-radius:6px;padding:6px;font-size:12px}
.card img{display:block} .card audio{width:220px;display:block;margin-top:4px}
img.fig{max-width:100%;height:auto} img.thumb{width:40px;height:40px;image-rendering:pixelated}
td ol{margin:0;padding-left:20px}
pre{background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto;max-height:320px}
details summary{cursor:pointer;font-size:13px;color:#0550ae}
"""


def esc(x: Any) -> str:
    """HTML-escape ``str(x)`` (quotes too)."""
    return html.escape(str(x), quote=True)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img_tag(png: bytes, alt: str, cls: str = "fig") -> str:
    return f'<img class="{esc(cls)}" alt="{esc(alt)}" src="{data_uri(png, "image/png")}">'


def audio_tag(wav: bytes, label: str) -> str:
    return f'<audio controls preload="metadata" aria-label="{esc(label)}" src="{data_uri(wav, "audio/wav")}"></audio>'


def note(text: str, cls: str = "note") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


def fmt(v: Any, digits: int = 2) -> str:
    """Numbers to fixed decimals, everything else as text."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[bool] | None = None, raw: bool = False) -> str:
    """A ``<table>``; cells are escaped unless ``raw`` (then the caller has escaped them)."""
    numeric = numeric or [False] * len(header)
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = ' class="num"' if i < len(numeric) and numeric[i] else ""
            cells.append(f"<td{cls}>{c if raw else esc(fmt(c))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


@dataclass
class Section:
    """One ``<section id=...>`` of a page; ``body`` is trusted (already escaped) HTML."""

    id: str
    title: str
    body: str

    def render(self) -> str:
        return f'<section id="{esc(self.id)}"><h2>{esc(self.title)}</h2>\n{self.body}\n</section>'


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: header, a table of contents and the sections in order."""
    toc = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.render() for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<meta name=\"generator\" content=\"mmdistill {esc(__version__)}\">"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        f"<nav>{toc}</nav>\n<main>\n{body}\n</main></body></html>\n"
    )


def write_page(path: str | Path, text: str) -> Path:
    """Write the page atomically (temporary file + rename)."""
    return atomic_write_text(path, text)
