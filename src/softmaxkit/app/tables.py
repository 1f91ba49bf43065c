"""Plain-text and Markdown tables: the one table printer of the package and its
benchmark harness (``softmaxkit explain``'s step table, ``softmaxkit bench``)."""
from __future__ import annotations

from typing import Literal, Sequence

__all__ = ["text_table", "markdown_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
               align: Literal["left", "right"] = "right") -> str:
    """Columns padded to their widest cell, a dashed rule under the header.

    Examples
    --------
    >>> from softmaxkit.app.tables import text_table
    >>> print(text_table(["i", "p"], [["0", "0.25"], ["1", "0.75"]]))
    i     p
    -  ----
    0  0.25
    1  0.75
    """
    if align not in ("left", "right"):
        raise ValueError(f"align must be 'left' or 'right', got {align!r}")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        pad = str.rjust if align == "right" else str.ljust
        return "  ".join(pad(c, w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table.

    Examples
    --------
    >>> from softmaxkit.app.tables import markdown_table
    >>> print(markdown_table(["a", "b"], [["1", "2"]]))
    | a | b |
    |---|---|
    | 1 | 2 |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
