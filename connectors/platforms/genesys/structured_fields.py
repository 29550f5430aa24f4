"""Structured field values (RFC 8941), as far as HTTP message signatures use them: parse an
sf-dictionary (``Signature-Input``, ``Signature``) and serialize an inner list (the signed
``@signature-params`` line is the parsed list written again, so a signer's spacing does not
matter and a verifier signs only what it understood)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

__all__ = [
    "BareItem",
    "FieldError",
    "InnerList",
    "Item",
    "Token",
    "parse_dictionary",
    "serialize_inner_list",
]


class Token(str):
    """An sf-token (written bare), as opposed to an sf-string (written quoted)."""

    __slots__ = ()


BareItem = bool | int | float | str | bytes  # str: String or Token


@dataclass(frozen=True, slots=True)
class Item:
    """A bare item with its parameters (a covered component, a signature's MAC)."""

    value: BareItem
    params: dict[str, BareItem]


@dataclass(frozen=True, slots=True)
class InnerList:
    """Items with parameters of their own (a signature's components and parameters)."""

    items: tuple[Item, ...]
    params: dict[str, BareItem]


class FieldError(ValueError):
    """A header is not a well-formed structured field."""


_KEY = re.compile(r"[a-z*][a-z0-9_\-.*]*")
_TOKEN = re.compile(r"[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*")
_NUMBER = re.compile(r"-?(\d+)(?:\.(\d*))?")
_BYTES = re.compile(r":([A-Za-z0-9+/=]*):")


class _Reader:
    """RFC 8941 section 4.2's parsing algorithms over one field value."""

    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0

    def peek(self) -> str:
        return self.s[self.i : self.i + 1]

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.i += 1

    def fail(self, what: str) -> FieldError:
        return FieldError(f"{what} at character {self.i + 1}")

    def dictionary(self) -> dict[str, Item | InnerList]:
        out: dict[str, Item | InnerList] = {}
        self.skip(" ")
        while self.peek():
            key = self.key()
            if self.peek() == "=":
                self.i += 1
                out[key] = self.inner_list() if self.peek() == "(" else self.item()
            else:
                out[key] = Item(True, self.params())
            self.skip(" \t")
            if not self.peek():
                return out
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.i += 1
            self.skip(" \t")
            if not self.peek():
                raise self.fail("trailing ','")
        return out

    def inner_list(self) -> InnerList:
        self.i += 1  # "("
        items: list[Item] = []
        while True:
            self.skip(" ")
            if not self.peek():
                raise self.fail("unterminated inner list")
            if self.peek() == ")":
                self.i += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")

    def item(self) -> Item:
        return Item(self.bare(), self.params())

    def params(self) -> dict[str, BareItem]:
        out: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.i += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.i += 1
                value = self.bare()
            out[key] = value
        return out

    def key(self) -> str:
        m = _KEY.match(self.s, self.i)
        if m is None:
            raise self.fail("expected a key")
        self.i = m.end()
        return m.group()

    def bare(self) -> BareItem:
        c = self.peek()
        if c and c in "-0123456789":
            return self.number()
        if c == '"':
            return self.string()
        if c == ":":
            m = _BYTES.match(self.s, self.i)
            if m is None:
                raise self.fail("bad byte sequence")
            self.i = m.end()
            try:
                return base64.b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4), validate=True)
            except binascii.Error:
                raise self.fail("bad base64") from None
        if c == "?" and self.s[self.i + 1 : self.i + 2] in ("0", "1"):
            self.i += 2
            return self.s[self.i - 1] == "1"
        m = _TOKEN.match(self.s, self.i)
        if m is None:
            raise self.fail("expected an item")
        self.i = m.end()
        return Token(m.group())

    def number(self) -> int | float:
        m = _NUMBER.match(self.s, self.i)
        if m is None:
            raise self.fail("expected a number")
        whole, frac = m.groups()
        if frac is None:
            if len(whole) > 15:
                raise self.fail("integer out of range")
        elif len(whole) > 12 or not 1 <= len(frac) <= 3:
            raise self.fail("decimal out of range")
        self.i = m.end()
        return int(m.group()) if frac is None else float(m.group())

    def string(self) -> str:
        out: list[str] = []
        self.i += 1
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == "\\":
                nxt = self.peek()
                if nxt not in ('"', "\\"):  # also the end of the text
                    raise self.fail("bad escape in string")
                out.append(nxt)
                self.i += 1
            elif c == '"':
                return "".join(out)
            elif not " " <= c <= "~":
                raise self.fail("non-printable character in string")
            else:
                out.append(c)
        raise self.fail("unterminated string")


def parse_dictionary(text: str) -> dict[str, Item | InnerList]:
    """An sf-dictionary field value (RFC 8941); ``FieldError`` when malformed."""
    return _Reader(text).dictionary()


def _bare(value: BareItem) -> str:
    """RFC 8941 section 4.1's serialization of a bare item."""
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = f"{round(value, 3):.3f}".rstrip("0")  # round() is half-even, like the RFC's
        return text + "0" if text.endswith(".") else text
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode() + ":"
    if isinstance(value, Token):
        return str(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _params(params: dict[str, BareItem]) -> str:
    return "".join(f";{k}" if v is True else f";{k}={_bare(v)}" for k, v in params.items())


def serialize_inner_list(value: InnerList) -> str:
    """The inner list as RFC 8941 writes it: what ``@signature-params`` signs."""
    items = " ".join(_bare(i.value) + _params(i.params) for i in value.items)
    return f"({items}){_params(value.params)}"
