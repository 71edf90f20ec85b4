"""Local Lambda functions of the order-fulfillment saga (``examples/order-fulfillment.yaml``).

Each receives the node envelope ``{"run_id", "workflow", "node", "attempt", "input", "deps",
"payload"}`` (a compensation gets ``"output"``, the output of the node it undoes, instead of
``"deps"``) and answers JSON. State lives in this process only: it is a demo.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

SHIPPING_COUNTRIES = {"FR", "DE", "ES", "IT", "NL", "BE", "GB", "US", "CA"}
_stock = {"MUG-01": 100, "TEA-07": 50, "PEN-02": 500}
_lock = threading.Lock()


class InvalidOrder(Exception):
    """The order cannot be fulfilled as given."""


class CardDeclined(Exception):
    """The payment provider said no (this demo declines nothing but a flaky first try)."""


class Undeliverable(Exception):
    """No carrier ships to this address."""


def validate(event: dict[str, Any], context: Any) -> dict[str, Any]:
    order = event["input"] or {}
    if not order.get("items") or not order.get("order_id"):
        raise InvalidOrder("an order needs an order_id and items")
    return {"order_id": order["order_id"], "lines": len(order["items"]), "amount": order.get("amount", 0)}


def reserve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _lock:
        for item in event["input"]["items"]:
            if _stock.get(item["sku"], 0) < item["qty"]:
                raise InvalidOrder(f"not enough {item['sku']}")
        for item in event["input"]["items"]:
            _stock[item["sku"]] -= item["qty"]
    return {"reservation": f"R-{uuid.uuid4().hex[:8]}", "items": event["input"]["items"]}


def release(event: dict[str, Any], context: Any) -> dict[str, Any]:
    with _lock:
        for item in event["output"]["items"]:
            _stock[item["sku"]] = _stock.get(item["sku"], 0) + item["qty"]
    return {"released": event["output"]["reservation"]}


def charge(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event["input"].get("flaky_payment") and event["attempt"] == 1:
        raise CardDeclined("the payment provider timed out; the next attempt goes through")
    amount = event["deps"]["validate_order"]["amount"]
    return {"charge": f"CH-{uuid.uuid4().hex[:8]}", "amount": amount}


def refund(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"refunded": event["output"]["charge"], "amount": event["output"]["amount"]}


def ship(event: dict[str, Any], context: Any) -> dict[str, Any]:
    country = (event["input"].get("address") or {}).get("country")
    if country not in SHIPPING_COUNTRIES:
        raise Undeliverable(f"no carrier ships to {country!r}")
    return {
        "shipment": f"SH-{uuid.uuid4().hex[:8]}",
        "reservation": event["deps"]["reserve_stock"]["reservation"],
    }


def cancel_shipment(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"cancelled": event["output"]["shipment"]}


FUNCTIONS = {
    "order-validate": validate,
    "inventory-reserve": reserve,
    "inventory-release": release,
    "payment-charge": charge,
    "payment-refund": refund,
    "shipping-create": ship,
    "shipping-cancel": cancel_shipment,
}
