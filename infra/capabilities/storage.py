"""DynamoDB tables: on demand, point-in-time recovery, encrypted with the AWS managed key, TTL.

Key layouts are the ones the code uses (``taskplane.local.resources`` creates the same tables in moto):
tasks ``pk``/``sk`` strings with TTL on ``expires_at``; idempotency ``id`` with TTL on ``expiration``
(the Powertools default); control ``pk`` (leases, resume points); wheel ``pk`` (shard + slot start) /
``sk`` (due ms + id) with TTL on ``expires_at``; schedules ``pk``/``sk``. No secondary index: every
read is a key lookup or a Query on one partition (ids are time-ordered), so none is needed.

Tables are shared between item kinds (the adapters' key functions make each kind's partition key):

- tasks: a task ``<tenant>#<bucket>``, a dead letter ``<tenant>#dead``, a windowed trigger's key and
  event marks ``<tenant>#win#<trigger>`` and its windows ``<tenant>#win#<trigger>#<window>``;
- control: a wheel shard's lease and resume point ``wheel#<shard>``, the shard ring ``wheel#ring``,
  circuit breakers ``breaker#...``, in-flight counts ``inflight#<tenant>``, duration sketches
  ``sketch#...``, ``sketchparts#...`` and their index ``sketches#<tenant>``;
- schedules: a schedule ``<tenant>`` (the bare tenant id), a trigger ``trg#<tenant>``;
- wheel: entries only (``<shard>#<slot>``); runs: ``R#<tenant>#<run>`` and ``L#<tenant>#<workflow>``;
  workflows: ``W#<tenant>`` and ``V#<tenant>#<name>``; idempotency: Powertools' records.

A function that needs only some kinds of a shared table gets a grant narrowed to them with
``dynamodb:LeadingKeys`` (:class:`Items`); ``tests/iam`` evaluates every recorded call's partition
keys against those conditions as AWS would.

A table named ``<name>`` here reaches the code as ``PlatformSettings.<name>_table`` (its environment
variable comes from ``taskplane.settings``); ``tests/infra`` checks that every such field has a table.
The workflows' tables are made only once ``functions/step`` exists, because a key schema cannot
change without replacing the table: its owner confirms the layouts below first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as ddb
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.config import EnvironmentConfig


@dataclass(frozen=True)
class TableSpec:
    name: str
    partition_key: str
    sort_key: str | None = None
    ttl_attribute: str | None = None
    #: The function whose arrival brings this table (None: always there).
    feature: str | None = None


TABLES = (
    TableSpec("tasks", "pk", "sk", ttl_attribute="expires_at"),
    TableSpec("idempotency", "id", ttl_attribute="expiration"),
    # Tick leases and resume points, circuit breakers, in-flight counts, duration sketches (these expire).
    TableSpec("control", "pk", ttl_attribute="expires_at"),
    TableSpec("wheel", "pk", "sk", ttl_attribute="expires_at"),
    TableSpec("schedules", "pk", "sk"),
    TableSpec("workflows", "pk", "sk", feature="step"),
    TableSpec("runs", "pk", "sk", ttl_attribute="expires_at", feature="step"),
)


#: The item actions whose requests carry ``dynamodb:LeadingKeys`` (the partition keys they name), per
#: the Service Authorization Reference (Actions, resources, and condition keys for Amazon DynamoDB).
#: A ``ForAllValues`` condition holds for a request without the key, so a conditioned statement that
#: also granted Scan, PartiQL or table metadata would grant them on every item: never add one.
LEADING_KEY_ACTIONS = frozenset(
    {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    }
)


@dataclass(frozen=True)
class Items:
    """Some item kinds of a shared table, by their partition keys (IAM's ``dynamodb:LeadingKeys``).

    A request is allowed when every partition key it names matches one of ``like`` (when given) and
    none of ``unlike`` (IAM patterns: ``*`` any run of characters, ``?`` one). A batch names all its
    keys in the table at once; a transaction's items are authorized one by one.
    """

    #: What the kinds are (the docs' word for them).
    kinds: str
    like: tuple[str, ...] = ()
    unlike: tuple[str, ...] = ()

    def condition(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.like:
            found["ForAllValues:StringLike"] = {"dynamodb:LeadingKeys": list(self.like)}
        if self.unlike:
            found["ForAllValues:StringNotLike"] = {"dynamodb:LeadingKeys": list(self.unlike)}
        if not found:
            raise ValueError(f"{self.kinds}: a narrowed grant names its partition keys")
        return found


#: The wheel's side of the control table: a shard's lease and resume point (``wheel#<shard>``) and
#: the shard ring (``wheel#ring``).
WHEEL_CONTROL = Items("wheel leases, resume points and the shard ring", like=("wheel#*",))
#: A schedule's partition is its bare tenant id: an API Gateway key id in AWS, a configured name
#: (``[a-z0-9-]``) locally, never a ``#``; every other kind in the schedules table has one (a
#: trigger ``trg#<tenant>``), so a kind added later stays outside too. No prefix can name a
#: tenant-first key, hence the negated pattern (still an Allow: nothing outside it is granted).
SCHEDULES = Items("schedules", unlike=("*#*",))
#: Triggers in the schedules table.
TRIGGERS = Items("triggers", like=("trg#*",))
_BREAKERS_AND_SKETCHES = ("breaker#*", "sketch#*", "sketchparts#*", "sketches#*")
#: Circuit breakers and duration sketches (with their parts lists and per-tenant index) in the
#: control table: what the step function reads and writes there.
BREAKERS_AND_SKETCHES = Items("circuit breakers and duration sketches", like=_BREAKERS_AND_SKETCHES)
#: What the worker reads in the control table: breakers, sketches (not their per-tenant index: only
#: GET /v1/stats reads that), and the wheel's leases and ring: a retry or watch due soon is placed by
#: the ring and wakes its shard's tick when the lease shows none running (services/wakes.py).
WORKER_CONTROL_READS = Items(
    "breakers, sketches, the wheel's leases and ring",
    like=("breaker#*", "sketch#*", "sketchparts#*", "wheel#*"),
)
#: What the worker writes in the control table: breakers, sketches and in-flight counts.
WORKER_CONTROL_WRITES = Items(
    "breakers, sketches and in-flight counts", like=(*_BREAKERS_AND_SKETCHES, "inflight#*")
)
#: Tenants' in-flight counts (``inflight#<tenant>``): the only items the API writes in the control table.
INFLIGHT = Items("in-flight counts", like=("inflight#*",))
#: Published workflow versions (``V#<tenant>#<name>``), not the workflows' current records.
VERSIONS = Items("workflow versions", like=("V#*",))


def task_items(buckets: int) -> Items:
    """Tasks in the tasks table (``<tenant>#<bucket>``, a bucket number below ``buckets``), not its
    dead letters (``<tenant>#dead``) nor its trigger windows (``<tenant>#win#...``)."""
    digits = len(str(max(buckets, 1) - 1))
    return Items("tasks", like=tuple("*#" + "?" * n for n in range(1, digits + 1)), unlike=("*#*#*",))


def grant_items(
    table: ddb.ITable,
    role: iam.IGrantable,
    *,
    read: bool = True,
    write: bool = True,
    delete: bool = False,
    batch_write: bool = False,
    batch_get: bool = False,
    items: Items | None = None,
) -> None:
    """Item reads and writes on one table, and only those the function's code makes; with ``items``,
    only on those item kinds of the table.

    Never Scan, streams or table metadata (CDK's ``grant_read_write_data`` adds them; no code calls
    them), and deletes and batches only where a function makes them: ``tests/iam`` checks every call
    the integration suite makes against these grants and fails on a grant nothing uses.
    """
    actions = [
        *(("dynamodb:GetItem", "dynamodb:Query") if read else ()),
        *(("dynamodb:PutItem", "dynamodb:UpdateItem") if write else ()),
        *(("dynamodb:DeleteItem",) if delete else ()),
        *(("dynamodb:BatchWriteItem",) if batch_write else ()),
        *(("dynamodb:BatchGetItem",) if batch_get else ()),
    ]
    if items is None:
        table.grant(role, *actions)
    else:
        grant_on_items(table, role, actions, items)


def grant_on_items(table: ddb.ITable, role: iam.IGrantable, actions: list[str], items: Items) -> None:
    """``actions`` on ``table``, on the item kinds ``items`` names only (one statement)."""
    if not set(actions) <= LEADING_KEY_ACTIONS:
        raise ValueError(f"{sorted(set(actions) - LEADING_KEY_ACTIONS)} carry no partition key to narrow")
    role.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(actions=actions, resources=[table.table_arn], conditions=items.condition())
    )


def platform_table(
    scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, spec: TableSpec
) -> ddb.Table:
    """A table as every capability wants one; its physical name is ``<prefix>-<spec.name>``."""
    s = ddb.AttributeType.STRING
    return ddb.Table(
        scope,
        construct_id,
        table_name=f"{cfg.prefix}-{spec.name}",
        partition_key=ddb.Attribute(name=spec.partition_key, type=s),
        sort_key=ddb.Attribute(name=spec.sort_key, type=s) if spec.sort_key else None,
        billing_mode=ddb.BillingMode.PAY_PER_REQUEST,
        # The AWS managed key (aws/dynamodb): key use visible in CloudTrail, no monthly key fee.
        encryption=ddb.TableEncryption.AWS_MANAGED,
        point_in_time_recovery_specification=ddb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        time_to_live_attribute=spec.ttl_attribute,
        deletion_protection=cfg.retain_data,
        removal_policy=cdk.RemovalPolicy.RETAIN if cfg.retain_data else cdk.RemovalPolicy.DESTROY,
    )


class Storage(Construct):
    """``self.tables[name]`` for every table whose feature is deployed; ``tasks``/... as attributes."""

    def __init__(
        self, scope: Construct, construct_id: str, *, cfg: EnvironmentConfig, features: frozenset[str]
    ) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, ddb.Table] = {
            spec.name: platform_table(self, spec.name.capitalize(), cfg=cfg, spec=spec)
            for spec in TABLES
            if spec.feature is None or spec.feature in features
        }
        self.tasks = self.tables["tasks"]
        self.idempotency = self.tables["idempotency"]
        self.control = self.tables["control"]
        self.wheel = self.tables["wheel"]
        self.schedules = self.tables["schedules"]

    def settings_fields(self) -> dict[str, str]:
        """``{"<name>_table": physical name}`` for ``PlatformSettings``."""
        return {f"{name}_table": table.table_name for name, table in self.tables.items()}
