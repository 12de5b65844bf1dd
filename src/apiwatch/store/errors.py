"""Errors of the index store and its query language."""

from __future__ import annotations

from apiwatch.errors import ApiwatchError


class StoreError(ApiwatchError):
    """The index store cannot do what was asked (bad URL, unreachable database, bad argument)."""


class QueryError(StoreError):
    """A filter, time range or cursor could not be understood; says where in the text."""

    def __init__(self, detail: str, *, text: str | None = None, position: int | None = None):
        self.detail = detail
        self.text = text
        self.position = position
        where = "" if position is None else f" at position {position}"
        super().__init__(f"{detail}{where}")
