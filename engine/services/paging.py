"""Keyset paging over a table's id: the page after a given id, in id order.

Pages by id stay stable while rows are added: new rows get higher ids and so come after
everything already listed (a page is never shifted into a row seen twice or one skipped), unlike
OFFSET paging. The web layer wraps the id it continues after in a signed cursor
(engine.web.api.pagination); services see only ids.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import QueryableAttribute

T = TypeVar("T")
# Any select: its row type is kept (SQLAlchemy's Select is generic over its columns).
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class Slice(Generic[T]):
    items: list[T]
    # The id the next page starts after; None when this page is the last one.
    next_after: int | None


def keyset(query: SelectT, id_column: QueryableAttribute[int], after: int | None, limit: int) -> SelectT:
    """`query` narrowed to the rows after `after`, in id order, one more than `limit` (to know
    whether there is a next page)."""
    if after is not None:
        query = query.where(id_column > after)
    return query.order_by(id_column).limit(limit + 1)


def cut(rows: Sequence[T], limit: int, id_of: Callable[[T], int]) -> Slice[T]:
    """The page from the rows `keyset` returned."""
    items = list(rows[:limit])
    return Slice(items, id_of(items[-1]) if len(rows) > limit and items else None)
