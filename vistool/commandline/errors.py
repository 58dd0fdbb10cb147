"""Run the CLI with one-line errors and honest exit codes.

Every way a command can end is mapped to one line on stderr and an exit code:

- a usage error (unknown option, missing argument, bad value): `error: ...; see
  'vistool CMD --help'`, exit 2 (what click itself returns);
- a `VistoolError` (bad input, unloadable model, unusable option value): `error: ...`, exit 2;
- Ctrl-C: `interrupted`, exit 130; SIGTERM: `terminated`, exit 143;
- anything else is a bug: `error: internal error: TYPE: message`, exit 1, with the
  traceback only when VISTOOL_DEBUG=1.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

import typer

from vistool.errors import VistoolError
from vistool.interrupts import EXIT_INTERRUPTED, interrupt_exit_code, interrupt_word, sigterm_as_interrupt

PROG_NAME = "vistool"
EXIT_USAGE, EXIT_INTERNAL = 2, 1
DEBUG_ENV = "VISTOOL_DEBUG"


def polish_help(command: Any) -> None:
    """Tidy a click command tree's help in place: flags (on/off switches, --help) show no
    `<bool>` type. Takes the root command; recurses into groups."""
    from typer._click import Context  # Typer's own copy of click (it vendors click)

    help_option = command.get_help_option(Context(command))  # made once and cached by the command
    for param in [*getattr(command, "params", []), *([help_option] if help_option is not None else [])]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        polish_help(sub)


def usage_line(exc: Any) -> str:
    """Return a click usage error as one line: the message and where to read the help."""
    message = exc.format_message().strip().replace("\n", " ").rstrip(".")
    context = getattr(exc, "ctx", None)
    where = f"; see '{context.command_path} --help'" if context is not None else ""
    return f"error: {message}{where}"


def run(app: typer.Typer, argv: Sequence[str] | None = None) -> int:
    """Run the Typer `app` on `argv` (default: sys.argv[1:]); return the exit code.

    Messages go to stderr, one line each (see the module docstring for the codes).
    """
    command = typer.main.get_command(app)
    polish_help(command)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with sigterm_as_interrupt():
            code = command.main(args=args, prog_name=PROG_NAME, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except VistoolError as exc:
        _say(f"error: {exc}")
        return EXIT_USAGE
    except typer.Abort:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt as exc:
        _say(interrupt_word(exc))
        return interrupt_exit_code(exc)
    except typer.TyperException as exc:  # click's usage errors and friends (vendored by Typer)
        code = int(getattr(exc, "exit_code", EXIT_USAGE))
        if type(exc).__name__ == "NoArgsIsHelpError":  # `vistool` alone: the help, as click shows it
            typer.echo(exc.format_message(), err=True)
        else:
            _say(usage_line(exc) if code == EXIT_USAGE else f"error: {exc.format_message()}")
        return code
    except BrokenPipeError:  # `vistool ... | head`: the reader left; nothing to say
        return 0
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            traceback.print_exc()
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _say(f"error: internal error: {type(exc).__name__}: {reason} (set {DEBUG_ENV}=1 for the traceback)")
        return EXIT_INTERNAL
    return code if isinstance(code, int) else 0


def _say(line: str) -> None:
    """Print one line on stderr."""
    typer.echo(line, err=True)
