"""The two example workflows, declared in Python: each is the twin of its YAML file.

``taskplane workflow put examples/flows.py`` publishes both (``--dry-run`` prints the YAML it sends).
Published after ``examples/order-fulfillment.yaml`` and ``examples/preheat.yaml``, both answer
"unchanged": a flow and its YAML twin are the same definition. Nothing here runs on the platform:
each flow function is called once by the CLI, its task calls recorded as nodes; the task bodies never
run (the Lambda functions of the saga are in ``order_fulfillment.py``).

    taskplane workflow put examples/flows.py
    taskplane workflow run preheat --watch
"""

from taskplane.flow import flow, task

# -- the order-fulfillment saga (examples/order-fulfillment.yaml) -----------------------------------


@task(target="lambda:order-validate")
def validate_order(order):
    """Check that the order has an id and items; answers its lines and amount."""


@task(target="lambda:inventory-reserve", compensate="lambda:inventory-release")
def reserve_stock(order, validated):
    """Reserve every line's stock; undone by releasing it."""


@task(target="lambda:payment-charge", compensate="lambda:payment-refund")
def charge_card(order, validated):
    """Charge the card; undone by a refund."""


# An address no carrier ships to will not get better: one attempt.
@task(target="lambda:shipping-create", compensate="lambda:shipping-cancel", retry={"max_attempts": 1})
def create_shipment(order, reservation, payment):
    """Book the shipment once the stock is held and the card charged."""


@task(target="builtin:sleep", payload={"ms": 200})
def notify_customer(order, shipment):
    """Tell the customer (a 200 ms stand-in)."""


@flow(
    name="order-fulfillment",
    timeout_s=300,
    defaults={
        "timeout_s": 30,
        "retry": {"max_attempts": 3, "base_delay_ms": 500, "max_delay_ms": 5000, "jitter": "full"},
    },
    on_failure="compensate",
)
def order_fulfillment(order):
    """Reserve stock and charge in parallel, ship, notify; undo in reverse on failure."""
    validated = validate_order(order)
    reservation = reserve_stock(order, validated)  # needs validate_order
    payment = charge_card(order, validated)  # needs validate_order: runs beside reserve_stock
    shipment = create_shipment(order, reservation, payment)  # waits for both
    notify_customer(order, shipment)


# -- preheat: a fan-out with per-call node ids and payloads (examples/preheat.yaml) ----------------

#: Milliseconds each shard takes to warm; None is the flaky one (fails once, then succeeds).
SHARDS = {"eu": [300, 450, 250, 350], "us": [900, 700, 1100, None]}


@task(target="builtin:echo", payload={"regions": ["eu", "us"], "shards": 4})
def discover():
    """Find what to warm."""


@task(target="builtin:sleep")
def warm(plan):
    """Warm one shard."""


@task(target="builtin:echo")
def verify(*shards):
    """Check a region once all of its shards are warm."""


@task(target="builtin:echo", payload={"live": True})
def publish(*regions):
    """Go live once every region is verified."""


def _warm_one(region, number, ms):
    """The node options of one shard (called at import time, not by the flow: it only builds options)."""
    node_id = f"warm-{region}-{number}"
    if ms is None:
        return warm.options(id=node_id, target="builtin:fail", payload={"times": 1})
    return warm.options(id=node_id, payload={"ms": ms})


WARMERS = {
    region: [_warm_one(region, i, ms) for i, ms in enumerate(times, 1)] for region, times in SHARDS.items()
}


@flow(
    name="preheat",
    timeout_s=120,
    defaults={"timeout_s": 10, "retry": {"max_attempts": 3, "base_delay_ms": 200, "max_delay_ms": 2000}},
)
def preheat():
    """Fan-out cache warm-up in two regions; each region is verified as soon as it is ready."""
    plan = discover()
    warmed = {region: [shard(plan) for shard in shards] for region, shards in WARMERS.items()}
    verified = [
        verify.options(id=f"verify-{region}", payload={"region": region})(*warmed[region])
        for region in warmed
    ]
    publish(*verified)
