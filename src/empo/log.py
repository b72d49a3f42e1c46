"""Logging and progress with rich. Core functions log (never print); the CLI sets the handler up once."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console

T = TypeVar("T")

# Everything human-facing goes to stderr, so stdout stays clean for piping.
console = Console(stderr=True)
_configured = False


def setup_logging(verbose: bool = False) -> None:
    """Install a rich handler on the ``empo`` logger (idempotent)."""
    global _configured
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    logger = logging.getLogger("empo")
    logger.setLevel(level)
    if not _configured:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=True, markup=False)
        handler.setFormatter(logging.Formatter("%(message)s", datefmt="[%X]"))
        logger.addHandler(handler)
        logger.propagate = False
        _configured = True


def get_logger(name: str) -> logging.Logger:
    """A child of the ``empo`` logger."""
    return logging.getLogger(name if name.startswith("empo") else f"empo.{name}")


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """A rich progress bar over ``items`` (hidden when stderr is not a terminal, e.g. in CI logs)."""
    from rich.progress import track as rich_track

    if not console.is_terminal or not sys.stderr.isatty():
        yield from items
        return
    yield from rich_track(items, description=description, total=total, console=console, transient=True)


def progress():
    """A rich ``Progress`` with a rate column, for loops that report their own units (tokens/s, steps)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
