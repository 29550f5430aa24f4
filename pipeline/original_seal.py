"""The operator's Fernet key for the originals kept beside redacted text.

Mode ``redacted_and_original`` keeps what was said only encrypted, with a key the operator
holds in an environment variable (never in the config file, never in the database): the
store, the cache and the webhooks carry tokens that only the key's holder can open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from callsense.core.errors import ConfigError, InputError

__all__ = ["OriginalSeal"]


class OriginalSeal:
    """Seals and opens originals with one Fernet key, named by its environment variable."""

    __slots__ = ("_fernet", "env_var")

    def __init__(self, fernet: Any, env_var: str) -> None:
        self._fernet = fernet
        self.env_var = env_var

    @classmethod
    def from_env(cls, var: str, environ: Mapping[str, str] | None = None) -> OriginalSeal:
        """The key in ``$var``; a ``ConfigError`` at start-up if it is missing or malformed."""
        env = os.environ if environ is None else environ
        key = env.get(var, "")
        if not key:
            raise ConfigError(
                f"redaction.original_key_env: ${var} is not set; mode redacted_and_original "
                "keeps originals only encrypted, so it needs a Fernet key there",
                field="redaction.original_key_env",
            )
        try:
            from cryptography.fernet import Fernet
        except ImportError:  # pragma: no cover - cryptography ships with the service's deps
            raise ConfigError(
                "redaction mode redacted_and_original needs the 'cryptography' package; "
                "pip install cryptography",
                field="redaction.mode",
            ) from None
        try:
            return cls(Fernet(key.encode("ascii")), var)
        except (ValueError, TypeError, UnicodeEncodeError):
            raise ConfigError(
                f"redaction.original_key_env: ${var} is not a Fernet key (32 url-safe base64 "
                "bytes, e.g. from Fernet.generate_key())",
                field="redaction.original_key_env",
            ) from None

    def seal(self, text: str) -> str:
        """A Fernet token of ``text``."""
        token: bytes = self._fernet.encrypt(text.encode("utf-8"))
        return token.decode("ascii")

    def open(self, token: str) -> str:
        """The text sealed in ``token``; ``InputError`` if it was not made with this key."""
        from cryptography.fernet import InvalidToken

        try:
            data: bytes = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError, ValueError):
            raise InputError(
                "the original cannot be decrypted: the token is damaged or was sealed with "
                f"another key than ${self.env_var}"
            ) from None
        return data.decode("utf-8")
