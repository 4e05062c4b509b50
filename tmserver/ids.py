"""Object ids in URLs: decimal strings, or the original's legacy encoding.

The original encoded an id as base64url of ``"tmaps" + decimal id`` (so
``dG1hcHM0`` is 4). Responses always give plain decimal strings.
"""

from __future__ import annotations

import base64
import binascii

from tmserver.errors import MalformedRequestError

_PREFIX = "tmaps"
_MAX_ID = 2**63 - 1
#: no id (decimal or legacy) is longer; Python refuses to convert > 4300 digits
_MAX_LENGTH = 64


def decode_id(value: str, what: str = "id") -> int:
    """The integer id a URL or parameter gives.

    Raises
    ------
    MalformedRequestError
        When `value` is neither a decimal id nor a legacy-encoded one.
    """
    text = value.strip()
    if len(text) > _MAX_LENGTH:
        raise MalformedRequestError(f"invalid {what} {value[:24]!r}...: too long")
    if text.isascii() and text.isdigit():
        number = int(text)
    else:
        try:
            padded = text + "=" * (-len(text) % 4)
            decoded = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        except (binascii.Error, UnicodeError, ValueError):
            decoded = ""
        digits = decoded[len(_PREFIX) :]
        if not decoded.startswith(_PREFIX) or not (digits.isascii() and digits.isdigit()):
            raise MalformedRequestError(f"invalid {what} {value!r}: expected a decimal id")
        number = int(digits)
    if number > _MAX_ID:
        raise MalformedRequestError(f"invalid {what} {value!r}: too large")
    return number


def encode_legacy_id(number: int) -> str:
    """The original's encoding of `number` (for clients that still send it)."""
    return base64.urlsafe_b64encode(f"{_PREFIX}{number}".encode()).decode("ascii")
