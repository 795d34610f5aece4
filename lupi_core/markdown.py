"""Markdown tables, the one renderer the evaluation, bench, ablation and probe reports,
the tools and the app share."""
from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; cells are str()-ed, each row as long as the header."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"a table row has {len(row)} cells for {len(header)} columns: {list(row)}")
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)
