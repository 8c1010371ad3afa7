"""The `tissuebert` command: one typer app, subcommands registered from their modules."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from tissuebert import __version__
from tissuebert.cli.commands import register as register_commands
from tissuebert.errors import EXIT_USER_ERROR, TissueBertError, from_os_error
from tissuebert.progress import setup_logging

try:  # typer >= 0.20 vendors click; older typer depends on it
    from typer._click import exceptions as _click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as _click_exc

_EXIT = (typer.Exit, *([_click_exc.Exit] if hasattr(_click_exc, "Exit") else []))
_ABORT = (typer.Abort, *([_click_exc.Abort] if hasattr(_click_exc, "Abort") else []))

def _flags_shown_as_flags() -> None:
    """typer's rich help prints a ``<bool>`` type beside every on/off flag (even --help); a flag
    takes no value, so show none, as click's plain help does."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_tissuebert", False):  # pragma: no cover - another typer
        return

    def display_type_rich(self, ctx):
        if getattr(self, "is_bool_flag", False):
            return None
        return shown(self, ctx)

    display_type_rich._tissuebert = True
    TyperOption.display_type_rich = display_type_rich


_flags_shown_as_flags()

app = typer.Typer(
    name="tissuebert",
    help="Train TissueBERT on DNA methylation reads and deconvolve cfDNA into tissue proportions.\n\n"
         "Example: tissuebert demo --out demo",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tissuebert {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = None,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True, help="More log output (repeatable).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")] = False,
) -> None:
    setup_logging(verbose, quiet)


register_commands(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 2 user error) so tests can call it in-process."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = app(args=args, prog_name="tissuebert", standalone_mode=False)
    except TissueBertError as exc:
        return _fail(exc)
    except OSError as exc:  # a full disk or a read-only --out is the user's to fix, not a crash
        converted = from_os_error(exc, fallback=_out_argument(args))  # a failed write() may name no file
        if converted is None:
            raise
        return _fail(converted)
    except _click_exc.UsageError as exc:
        return _usage_error(exc)
    except _ABORT:
        typer.echo("tissuebert: aborted", err=True)
        return 130
    except _EXIT as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("tissuebert: interrupted", err=True)
        return 130
    return result if isinstance(result, int) else 0


def _out_argument(args: list[str]) -> str | None:
    for k, arg in enumerate(args):
        if arg in ("--out", "-o") and k + 1 < len(args):
            return args[k + 1]
        if arg.startswith("--out="):
            return arg.split("=", 1)[1]
    return None


def _usage_error(exc) -> int:
    """A bad flag or argument: typer's usage box for a person at a terminal, one line in a log."""
    if sys.stderr.isatty():
        exc.show()
        return EXIT_USER_ERROR
    command = exc.ctx.command_path if exc.ctx is not None else "tissuebert"
    message = " ".join(exc.format_message().split())
    typer.echo(f"tissuebert: error: {message} (see '{command} --help')", err=True)
    return EXIT_USER_ERROR


def _fail(exc: TissueBertError) -> int:
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    typer.echo(f"tissuebert: error: {message}", err=True)
    return EXIT_USER_ERROR


if __name__ == "__main__":
    raise SystemExit(main())
