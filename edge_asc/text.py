"""Plain-text tables for command output (``edge-asc info`` and friends).

Several commands print small aligned tables to a terminal or a log; they share this one
formatter so the tables look alike and nothing needs a rich-text dependency to render them.
"""

from __future__ import annotations

from collections.abc import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns separated by two spaces, header first, no trailing blanks.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequence of str
        Cells, one row per item; every row has as many cells as ``header``.

    Returns
    -------
    list of str
        One line per row (the header is the first), without newlines.

    Raises
    ------
    ValueError
        If a row's length differs from the header's.
    """
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
