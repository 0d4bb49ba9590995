"""How every console entry point (`zeetad detect`, `zeetad quickstart`, `examples/*.py`) reports errors: one line on
stderr, `<program>: error: <message>`, and an exit status that says what went wrong.

| exit status | meaning |
|---|---|
| 0 | success |
| 1 | runtime error: a file that is missing, unreadable or in the wrong format, corrupt weights, an unavailable device, a full disk, ... (the message names the file or the setting) |
| 2 | usage error: the command line itself (an unknown flag, a bad value, flags that do not go together) |
| 130 | interrupted (Ctrl-C) |

Anticipated errors are those of the types [`ANTICIPATED_ERRORS`]; anything else is a bug and keeps Python's full
traceback (exit status 1). `--debug` prints the traceback of anticipated errors too.
"""

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from huggingface_hub.errors import StrictDataclassError
from safetensors import SafetensorError
from transformers import HfArgumentParser


SUCCESS = 0
RUNTIME_ERROR = 1
USAGE_ERROR = 2
INTERRUPTED = 130
DEBUG_FLAG = "--debug"
DEBUG_HELP = "print the full traceback of an error (default: one line, `<program>: error: <message>`)"


class MissingOptionalDependency(ModuleNotFoundError):
    """An optional extra (e.g. gradio for `zeetad demo`) is missing; the message names the command installing it."""


# Errors that bad input or a bad environment cause (missing and unreadable files, wrong formats and values, full
# disks, unavailable devices, a missing optional extra), reported as one line: `OSError` covers FileNotFoundError,
# PermissionError and PyAV's file errors, `ValueError` covers JSON and Unicode decoding errors, `SafetensorError` a
# corrupt weights file and `StrictDataclassError` a config value of the wrong type (e.g. in a model folder's
# config.json). Any other ImportError is a bug and keeps its traceback.
ANTICIPATED_ERRORS = (OSError, ValueError, SafetensorError, StrictDataclassError, MissingOptionalDependency)


class UsageError(Exception):
    """A problem with the command line itself, reported as one line on stderr with exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    r"""
    An `argparse.ArgumentParser` whose errors raise [`UsageError`] (one line, exit status 2) instead of printing the
    whole usage block and exiting.
    """

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


class CommandLineHfArgumentParser(HfArgumentParser):
    r"""
    A `transformers.HfArgumentParser` for the example scripts: errors raise [`UsageError`] (one line, exit status 2),
    including the `ValueError`s of the dataclasses' own checks (`__post_init__`) and unknown arguments, and it takes
    [`DEBUG_FLAG`], which [`run_command`] reads.

    Args:
        dataclass_types:
            The argument dataclasses, as for `HfArgumentParser`.
        takes_json_config (`bool`, *optional*, defaults to `False`):
            Whether the script reads an optional JSON file of flags first
            ([`~zeetad_hf.training.parse_arguments`]): `--help` then shows it in the usage and describes it (argparse
            itself only knows the flags).
        kwargs:
            Passed to `HfArgumentParser`.
    """

    def __init__(self, dataclass_types, takes_json_config: bool = False, **kwargs):
        if takes_json_config:
            kwargs["usage"] = "%(prog)s [-h] [config.json] [--flag value ...]"
            kwargs["description"] = (
                f"{kwargs.get('description') or ''} config.json (optional, first): a JSON object of flags; the flags "
                "after it override its values."
            ).strip()
        super().__init__(dataclass_types, **kwargs)
        self.add_argument(DEBUG_FLAG, action="store_true", help=DEBUG_HELP)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")

    def parse_args_into_dataclasses(self, args: Sequence[str] | None = None, **kwargs) -> tuple:
        return_remaining_strings = kwargs.pop("return_remaining_strings", False)
        try:
            *outputs, remaining = super().parse_args_into_dataclasses(
                args=args, return_remaining_strings=True, **kwargs
            )
        except ValueError as error:
            raise UsageError(str(error)) from None
        if remaining and not return_remaining_strings:
            self.error(f"unrecognized arguments: {' '.join(remaining)}")
        # the namespace of the flags that belong to no dataclass: only DEBUG_FLAG, already read by `run_command`
        outputs = [output for output in outputs if not isinstance(output, argparse.Namespace)]
        return (*outputs, remaining) if return_remaining_strings else tuple(outputs)


def error_line(program: str, error: BaseException | str) -> str:
    """`<program>: error: <message>` on one line (the message's line breaks and runs of spaces become one space)."""
    return f"{program}: error: {' '.join(str(error).split())}"


def run_command(main: Callable[[list[str]], Any], program: str, argv: Sequence[str] | None = None) -> int:
    r"""
    Run the `main` function of a console entry point and turn its errors into one line on stderr and an exit status.

    Args:
        main (`Callable[[list[str]], Any]`):
            The entry point's work; it receives the arguments and raises on error (its return value is ignored).
        program (`str`):
            The program name that starts each error line, e.g. `"zeetad detect"` or `"train.py"`.
        argv (`Sequence[str]`, *optional*):
            The arguments without the program name; defaults to `sys.argv[1:]`. With [`DEBUG_FLAG`] among them the
            traceback of an anticipated error is printed before its line.

    Returns:
        `int`: 0 on success, 2 for a [`UsageError`], 1 for an anticipated error ([`ANTICIPATED_ERRORS`]), 130 when
        interrupted. Any other exception is a bug: it propagates with its traceback. `SystemExit` (e.g. after
        `--help`) propagates too.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    try:
        main(argv)
    except UsageError as error:
        return _report(program, error, USAGE_ERROR, debug)
    except ANTICIPATED_ERRORS as error:
        return _report(program, error, RUNTIME_ERROR, debug)
    except KeyboardInterrupt:
        print(f"{program}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return SUCCESS


def _report(program: str, error: BaseException, status: int, debug: bool) -> int:
    if debug:
        traceback.print_exception(error, file=sys.stderr)
    print(error_line(program, error), file=sys.stderr)
    return status


__all__ = [
    "ANTICIPATED_ERRORS",
    "DEBUG_FLAG",
    "ArgumentParser",
    "CommandLineHfArgumentParser",
    "MissingOptionalDependency",
    "UsageError",
    "error_line",
    "run_command",
]
