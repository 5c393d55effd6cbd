"""``selfsup-denoise``: train, denoise, run, info and export from the command line.

Expected problems (missing files, wrong axes, images too small, NaNs, an
existing output) end with one line that says what to do and a non-zero exit
code; a traceback is printed only with ``--debug``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._parser import build_parser

EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED, EXIT_INTERRUPTED = 1, 2, 3, 130
_INTERRUPTED = {
    "train": "interrupted while training; no model was saved",
    "denoise": "interrupted; completed chunks are kept, run the same command again with --resume to continue",
}


def _error(msg: str) -> None:
    print(f"selfsup-denoise: error: {msg}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 some inputs failed, 2 bad input, 4 a self-check failed).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` when omitted.
    """
    from ..batch import EXPECTED_ERRORS, Interrupted
    from ..export import BmzUnavailableError, ExportInputError
    from . import _commands, _export

    args = build_parser().parse_args(argv)
    run = {"train": _commands.cmd_train, "denoise": _commands.cmd_denoise}
    run |= {"run": _commands.cmd_run, "info": _commands.cmd_info, "export": _export.cmd_export}
    try:
        return run[args.command](args)
    except Interrupted as exc:
        _error(str(exc))
        return EXIT_STOPPED
    except KeyboardInterrupt as exc:  # cmd_run says how to continue (the command and its model file)
        _error(str(exc) or _INTERRUPTED.get(args.command, _INTERRUPTED["denoise"]))
        return EXIT_INTERRUPTED
    except (*EXPECTED_ERRORS, ExportInputError, BmzUnavailableError) as exc:
        if args.debug:
            raise
        _error(str(exc))
        return EXIT_USAGE
    except Exception as exc:
        if args.debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback and report it)")
        return EXIT_FAILED
