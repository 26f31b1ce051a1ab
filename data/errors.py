"""User errors and how they are worded: one line, meant for the user (every layer raises these)."""

from __future__ import annotations


class UserError(ValueError):
    """Bad input from the user: the CLIs print the message as one line and exit with status 2."""


class DatasetError(UserError):
    """A dataset that cannot be used."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else type(err).__name__
