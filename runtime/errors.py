"""One way to turn an exception or a file name into text for a one-line message.

Library errors can span pages and file names can hold newlines or control
characters; both would break the "one line naming the file and the problem"
promise, so every message goes through these helpers.
"""
from __future__ import annotations

import os

#: Longest message text quoted from a library error.
MAX_QUOTE = 240


def first_line(error: BaseException, with_type: bool = False, limit: int = MAX_QUOTE) -> str:
    """The first non-empty line of `error`'s message (its type name if it has none), cut to `limit`."""
    for line in str(error).splitlines():
        line = line.strip()
        if line:
            text = line[:limit]
            return f"{type(error).__name__}: {text}" if with_type else text
    return type(error).__name__


def printable(name: str | os.PathLike | bytes) -> str:
    """A path as one printable line: control characters escaped, undecodable bytes as \\xNN.

    os.fsdecode keeps undecodable bytes as lone surrogates, which cannot be
    encoded for a terminal or a CSV file; they are written as backslash escapes.
    """
    text = os.fsdecode(name) if isinstance(name, (bytes, os.PathLike)) else str(name)
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not valid UTF-8 (surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}"))
        else:
            out.append(char)
    return "".join(out)
