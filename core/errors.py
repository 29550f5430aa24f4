"""One exception tree for all of callsense.

Callers catch ``InputError`` ("the input is wrong, fix it, do not retry") apart from
``RetryableError`` ("try again later") without reading the code, as httpx does.
It lives in ``rules`` because that package is the bottom layer: everything may import it.
"""

from __future__ import annotations

__all__ = ["CallsenseError", "ConfigError", "InputError", "RetryableError"]


class CallsenseError(Exception):
    """Base of every error callsense raises on purpose."""


class InputError(CallsenseError):
    """The input (a file, a config, a request) is wrong; retrying will not help."""


class RetryableError(CallsenseError):
    """A transient fault (a receiver down, a timeout); the same call may succeed later."""


class ConfigError(InputError):
    """A YAML file failed validation; carries file, line and field so the user can fix it.

    ``str(err)`` reads, e.g.,
    ``configs/policies/x.yaml:12: rules[0].when.consecutive: must be >= 1 (got 0)``.
    One ``ConfigError`` may hold several problems (``problems``), each already formatted.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        problems: list[str] | None = None,
    ) -> None:
        self.file = file
        self.line = line
        self.field = field
        self.message = message
        where = file or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        head = f"{where}: {field}: {message}" if field else f"{where}: {message}"
        self.problems = problems or [head]
        super().__init__("\n".join(self.problems))
