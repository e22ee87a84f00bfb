"""A handler using every shape the contract generators describe (not routed)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any, Literal, NotRequired, TypedDict

from wsmanager import RpcHandler, rpc
from wsmanager.contract import ClientMethod, ErrorCode, Notification, raises

OUT_OF_STOCK = ErrorCode(4100, "Out of stock")


class Order(TypedDict):
    item: str
    quantity: int
    note: NotRequired[str]


@dataclasses.dataclass
class Receipt:
    order_id: int
    total: float
    lines: list[str] = dataclasses.field(default_factory=list)


def is_clerk(handler: Any) -> bool:
    return True


class ShopHandler(RpcHandler):
    """A shop: orders in, receipts and stock news out."""

    handler_name = "tests.shop"
    sends = {
        "stock": Notification({"item": str, "left": int}, "Stock changed."),
        "tick": Notification({"count": int, "label": str | None}, by_position=True),
        "closing": Notification(),
    }
    client_methods = {
        "confirm": ClientMethod({"question": str}, bool, "Ask the user.", by_position=True),
        "address": ClientMethod({"country": Literal["fr", "de"]}, result=dict[str, str]),
        "wave": ClientMethod(),
    }

    @rpc
    @raises(OUT_OF_STOCK)
    async def order(self, order: Order, express: bool = False) -> Receipt:
        """Place an order.

        Express orders cost more.
        """
        return Receipt(1, 9.5)

    @rpc(name="shop.search")
    def search(self, query: str, /, limit: int = 10, tags: list[str] | None = None) -> list[str]:
        """Find items by name."""
        return []

    @rpc
    async def receipts(self, since: int, limit: int | None = None) -> AsyncIterator[Receipt]:
        """Stream the receipts after an order id."""
        yield Receipt(since + 1, 1.0)

    @rpc
    async def restock(self, items: AsyncIterator[Order], note: str = "") -> int:
        """Take a delivery, one order line at a time."""
        return sum([1 async for _ in items])

    @rpc(permission="shop.refund")
    async def refund(self, *, order_id: int, reason: str = "") -> None:
        return None

    @rpc(permission=is_clerk)
    async def stats(self) -> dict[str, int]:
        return {}

    @rpc
    async def anything(self, value, *rest: Any, **extra: Any):  # type: ignore[no-untyped-def]
        return value
