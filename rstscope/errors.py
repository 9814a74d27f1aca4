"""Error tree and exit codes.

Every expected fault raises a subclass of :class:`RstscopeError`.  The CLI
catches them at one boundary (``rstscope.cli.main``) and turns each into a
one-line message and the exit code below, so users never see a traceback for
bad input.  Exit codes follow sysexits.h where one fits.
"""

from __future__ import annotations

import importlib

EXIT_OK = 0
EXIT_FAIL_ON = 1  # an opt-in --fail-on condition was met (grep-style)
EXIT_USAGE = 2  # bad flags or arguments (click's default too)
EXIT_DATAERR = 65  # EX_DATAERR: capture is corrupt and nothing readable was found
EXIT_NOINPUT = 66  # EX_NOINPUT: input missing or unreadable
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a needed external tool (tcpdump, haproxy, ...) is missing
EXIT_SOFTWARE = 70  # EX_SOFTWARE: internal error (a bug); never reused for anything else
EXIT_OSERR = 71  # EX_OSERR: the reset lab could not build or run its namespaces/processes
EXIT_IOERR = 74  # EX_IOERR: output cannot be written
EXIT_NOPERM = 77  # EX_NOPERM: no capture privilege (CAP_NET_RAW)


class RstscopeError(Exception):
    """Base of all expected errors; carries the exit code the CLI uses."""

    exit_code: int = EXIT_SOFTWARE


class UsageError(RstscopeError):
    """Bad arguments or options."""

    exit_code = EXIT_USAGE


class InputMissingError(RstscopeError):
    """An input file does not exist or cannot be opened."""

    exit_code = EXIT_NOINPUT


class CaptureError(RstscopeError):
    """A capture is not a capture, or is corrupt with nothing readable."""

    exit_code = EXIT_DATAERR


class OutputError(RstscopeError):
    """An output file or directory cannot be written."""

    exit_code = EXIT_IOERR


class PrivilegeError(RstscopeError):
    """Live capture without CAP_NET_RAW."""

    exit_code = EXIT_NOPERM


class MissingExtraError(RstscopeError):
    """An optional dependency is not installed; the message names the pip/apt line."""

    exit_code = EXIT_USAGE


def require(module: str, *, extra: str | None = None, apt: str | None = None) -> object:
    """Import an optional module or raise :class:`MissingExtraError` with the install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hints = []
        if extra:
            hints.append(f"pip install 'rstscope[{extra}]'")
        else:
            hints.append(f"pip install {module.split('.')[0]}")
        if apt:
            hints.append(f"apt-get install {apt}")
        raise MissingExtraError(
            f"{module} is needed for this; install it with: {' or '.join(hints)}"
        ) from exc


class ToolUnavailableError(RstscopeError):
    """A needed external program (tcpdump, haproxy, nginx, iptables, ip) is not installed."""

    exit_code = EXIT_UNAVAILABLE


class LabError(RstscopeError):
    """The reset lab failed to set up or run a scenario (namespaces, processes, timing)."""

    exit_code = EXIT_OSERR
