"""Stored items the current code cannot read, reported one by one instead of ending a whole read.

An aggregate or ledger row written by an older version, edited by hand or damaged (a product this
version does not know, a month outside the calendar, a number that is not one) raises while it is
parsed. A caller that can isolate it (the monthly export holds that customer back and publishes
the rest) passes ``unreadable``: the item is skipped and reported as (customer id, reason). Without
it, the error is raised as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import ValidationError

Unreadable = Callable[[str, str], object]
"""Called with (the item's ``owner`` attribute as stored - its customer id, or a session's id -
or "" when even that is missing; the reason)."""
MAX_REASON = 300


def reason(values: dict[str, Any], exc: Exception) -> str:
    """``<PK>/<SK>: <what is wrong>``, without the offending values (pydantic's field and
    message only), at most ``MAX_REASON`` characters."""
    if isinstance(exc, ValidationError):
        what = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in exc.errors()[:3]
        )
    else:
        what = f"{type(exc).__name__}: {exc}"
    return f"{values.get('PK', '?')}/{values.get('SK', '?')}: {what}"[:MAX_REASON]


def readable[T](
    parse: Callable[[dict[str, Any]], T],
    items: Iterable[dict[str, Any]],
    unreadable: Unreadable | None,
    owner: str = "customer_id",
) -> Iterator[T]:
    """``parse`` of every item; an item that cannot be parsed goes to ``unreadable`` (or raises
    when it is None)."""
    for values in items:
        try:
            yield parse(values)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            if unreadable is None:
                raise
            unreadable(str(values.get(owner) or ""), reason(values, exc))
