"""Plain-text formatting shared by the library and the CLI.

It lives outside ``zoo.cli`` so that library modules (``zoo.probe``, ``zoo.report``) can format the same
way as the commands without importing click; keep it free of heavy imports.
"""

from __future__ import annotations


def fmt_params(n: int | None) -> str:
    if n is None:
        return "?"
    for div, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def and_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: a list as a sentence says it."""
    items = [str(x) for x in items]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}" if items else ""
