"""The ``empo`` command line: one thin Typer command per stage over a plain function.

Start-up stays instant: this module and the per-stage ``cli`` modules import only typer/pydantic; torch,
transformers and friends are imported inside the command bodies.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from empo import __version__

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="empo",
    help=(
        "Make language models more empathetic, and measure whether they are.\n\n"
        "Pipeline: build-prefs (preference pairs from EmpatheticDialogues) -> sft / align (DPO, IPO, ORPO, KTO, "
        "SimPO, GRPO, RLOO with LoRA/QLoRA on TRL) -> generate (answer held-out dialogues) -> eval (diff-Epitome, "
        "BERTScore, diversity, valence; MMLU and the Open LLM Leaderboard through lm-eval). `empo reproduce` "
        "runs it all from one recipe.\n\n"
        "Data root: $EMPO_DATA_DIR (default ../shared/data beside the repository). "
        "Caches: $EMPO_CACHE_DIR (default ~/.cache/empo)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"empo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    from empo.log import setup_logging

    setup_logging(verbose)


def guarded(fn: F) -> F:
    """Run a command body; an :class:`~empo.errors.EmpoError` becomes ONE red line and exit status 1."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from empo.errors import EmpoError

        try:
            return fn(*args, **kwargs)
        except EmpoError as exc:
            from empo.log import console

            console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


# (command name, module, attribute). A Typer *function* becomes a command; a Typer *app* becomes a group.
COMMANDS: list[tuple[str, str, str]] = [
    ("build-prefs", "empo.prefs.cli", "build_prefs_command"),
    ("sft", "empo.align.cli", "sft_command"),
    ("align", "empo.align.cli", "align_command"),
    ("export", "empo.export", "export_command"),
    ("generate", "empo.generate.cli", "generate_command"),
    ("eval", "empo.evaluation.cli", "eval_command"),
    ("sem", "empo.sem.cli", "app"),
    ("identifiers", "empo.identifiers.cli", "app"),
    ("reproduce", "empo.reproduce.cli", "reproduce_command"),
]


def _register() -> None:
    for name, module, attr in COMMANDS:
        obj = getattr(importlib.import_module(module), attr)
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=name)
        else:
            app.command(name)(obj)


_register()


def main() -> None:
    """Console-script entry point."""
    app(prog_name="empo")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
