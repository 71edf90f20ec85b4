"""Billable AWS units per delayed task, counted on the real handlers (issue 7, item 1).

Runs N delayed tasks (default 10,000) through the real Lambda handlers on in-process moto, the way
they run in AWS: the API handler receives API Gateway events carrying batches of 100 tasks, the tick
handler runs shard 0 in a loop (as EventBridge's rate(1 minute) does), and an event-source-mapping
loop receives up to 10 lane messages, invokes the worker handler and deletes what it acknowledged.

Every AWS request any client makes is counted (``BaseClient._make_api_call`` is wrapped, so no
client escapes, Powertools' own included) and priced in billable units from the request and the
response, because moto's ConsumedCapacity is not what AWS would bill:

* DynamoDB writes: 1 WRU per KB (rounded up) of the larger of the item before and after the write,
  per item (BatchWriteItem), twice for transactions; a failed conditional write still costs its
  units. Item sizes follow the documented rules (attribute names + values, numbers ~1 byte per 2
  digits, 3 bytes per list/map plus 1 per element). The tables have no secondary index, so there
  are no index writes to add.
* DynamoDB reads: 4 KB per RRU of what was read (rounded up per request), halved for eventually
  consistent reads.
* SQS: one request per call and per 64 KB of payload. Empty receives are counted apart: the event
  source mapping in AWS long-polls (20 s), so they cost cents a month, not per task.
* Lambda: invocations per function, and GB-seconds from the CPU time our handlers spent (the CPU
  inside moto subtracted, measured per thread) stretched by the CPU share of the configured memory
  (1,769 MB = one vCPU), plus the AWS calls' latency at stated figures, times the memory.
* API Gateway: one request per batch call.

Two targets, one run each: an HTTP target on a loopback server in this process (what users run: it
has a circuit breaker, whose read and counting write per delivery batch are in its units) and the
builtin echo (no breaker, no network: the platform's floor). ``cost.json`` is the HTTP run, with
both runs' units under ``by_target``; pricing's headline uses the HTTP target's.

    python bench/cost.py --tasks 10000
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import math
import os
import random
import re
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent

#: Configured memory of each function (infra/capabilities/api.py; the worker's and the tick's are
#: infra/config.py's defaults, worker_memory_mb and tick_memory_mb).
MEMORY_MB = {"api": 1024, "worker": 256, "tick": 256}
#: Lambda gives a function one full vCPU at 1,769 MB and a proportional share below.
FULL_VCPU_MB = 1769
#: Latency assumed per AWS call when turning calls into billed duration (AWS's published "single-digit
#: millisecond" DynamoDB; SQS requests typically 10-20 ms). Stated, not measured: moto has no network.
LATENCY_MS = {"dynamodb": 6.0, "dynamodb-batch": 12.0, "sqs": 12.0, "other": 20.0}
ACCOUNT = "123456789012"
REGION = "us-east-1"


# -- item sizes (DynamoDB's documented rules) ---------------------------------------------------------
def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").split("e")[0].split("E")[0].strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON (``{"S": "x"}``)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        return _number_size(v)
    if kind == "B":
        return len(v) if isinstance(v, bytes | bytearray) else len(base64.b64decode(v))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(e.encode()) for e in v)
    if kind == "NS":
        return sum(_number_size(e) for e in v)
    if kind == "BS":
        return sum(len(e) for e in v)
    if kind == "L":
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + value_size(e) for k, e in v.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    """Bytes of an item in DynamoDB JSON, as DynamoDB counts them for capacity units."""
    if not item:
        return 0
    return sum(len(k.encode()) + value_size(v) for k, v in item.items())


def write_units(before: int, after: int) -> int:
    """WRU of one item write: per KB of the larger image, at least one."""
    return max(1, math.ceil(max(before, after) / 1024))


def read_units(size: int, consistent: bool) -> float:
    """RRU of one read request of ``size`` bytes: per 4 KB, at least one; eventually consistent halves it."""
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


def _peek(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The item as moto holds it now (read from moto's backend: no request, nothing counted)."""
    return _peek_many(table, [key])[0]


def _peek_many(table: str, keys: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The items as moto holds them now, read under one hold of moto's lock: a Query's hundreds of
    items peeked one lock at a time kept the metered tick waiting behind the workers' writes for
    seconds (a bench artifact that made its lease run out)."""
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.models.dynamo_type import DynamoType

    from taskplane.local.moto_patches import _LOCK

    t = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    found: list[dict[str, Any] | None] = []
    with _LOCK:  # moto's writes hold it: never read an item half-written
        for key in keys:
            hash_key = DynamoType(key[t.hash_key_attr])
            range_key = DynamoType(key[t.range_key_attr]) if t.range_key_attr else None
            try:
                item = t.get_item(hash_key, range_key)
            except Exception:
                item = None
            found.append(item.to_json()["Attributes"] if item is not None else None)
    return found


def _kind(key: dict[str, Any]) -> str:
    """What an item is, from its partition key's prefix (``breaker#...``, ``sketch#...``), or ``item``."""
    pk = next(iter(key.values()), {})
    text = pk.get("S", "") if isinstance(pk, dict) else ""
    return text.split("#", 1)[0] if "#" in text else "item"


def _key_of(table: str, item: dict[str, Any]) -> dict[str, Any]:
    from moto.dynamodb.models import dynamodb_backends

    t = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    names = [t.hash_key_attr] + ([t.range_key_attr] if t.range_key_attr else [])
    return {n: item[n] for n in names}


def _stored_key(params: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """The key of a projected Query's item: its partition key, when not projected, from the Query's
    key condition (``#pk = :pk``)."""
    from moto.dynamodb.models import dynamodb_backends

    t = dynamodb_backends[ACCOUNT][REGION].get_table(params["TableName"])
    key = {n: item[n] for n in (t.hash_key_attr, t.range_key_attr) if n and n in item}
    if t.hash_key_attr not in key:
        names = params.get("ExpressionAttributeNames", {})
        for name, value in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params["KeyConditionExpression"]):
            if names.get(name, name) == t.hash_key_attr:
                key[t.hash_key_attr] = params["ExpressionAttributeValues"][value]
    return key


# -- the meter -----------------------------------------------------------------------------------
class Meter:
    """Counts every AWS request and the CPU our code spends, per function, per thread."""

    def __init__(self) -> None:
        self.enabled = False
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.units: dict[str, Counter[str]] = defaultdict(Counter)  # op -> {"wru": .., "rru": .., "sqs": ..}
        self.by_function: dict[str, Counter[str]] = defaultdict(Counter)  # function -> op counts
        self.function_units: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.io_ms: Counter[str] = Counter()  # function -> assumed latency of its calls
        self.cpu_s: Counter[str] = Counter()  # function -> our CPU seconds
        self.invocations: Counter[str] = Counter()
        self.empty_receives = 0
        self.item_bytes: dict[str, int] = defaultdict(int)  # table -> largest item written
        self.split: Counter[str] = Counter()  # worker CPU before / after the start write, in seconds
        self.sketch: Counter[str] = Counter()  # duration-sketch writes: target-minute adds and their writes
        self.local = threading.local()
        #: moto's CPU so far in each thread (by ident): a sampler reads another thread's share of it
        self.moto_by_thread: dict[int, float] = {}
        #: the tick's senders' CPU (ours, moto excluded), added at each send; messages they sent
        self.tick_send_s = 0.0
        self.tick_sent = 0

    def split_record(self, cpu_end: float, moto_end: float) -> None:
        """Add one worker record's CPU before and after its start write (moto's CPU excluded)."""
        began = getattr(self.local, "record_began", None)
        mark = getattr(self.local, "start_mark", None)
        self.local.record_began = None
        if began is None or mark is None:
            return  # no start write (a duplicate, a missing task): not a start
        before = (mark[0] - began[0]) - (mark[1] - began[1])
        after = (cpu_end - mark[0]) - (moto_end - mark[1])
        with self.lock:
            self.split["before_start"] += max(0.0, before)
            self.split["after_start"] += max(0.0, after)
            self.split["records"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": Counter(self.calls),
                "units": {op: Counter(u) for op, u in self.units.items()},
                "io_ms": Counter(self.io_ms),
                "cpu_s": Counter(self.cpu_s),
            }

    def since(self, before: dict[str, Any], function: str, result: Any) -> dict[str, Any]:
        """What happened since ``before`` (one idle check of the tick), as units per check."""
        with self.lock:
            calls = {op: n - before["calls"].get(op, 0) for op, n in self.calls.items()}
            units: Counter[str] = Counter()
            for op, u in self.units.items():
                for k, v in u.items():
                    units[k] += v - before["units"].get(op, Counter()).get(k, 0)
            return {
                "calls": {op: n for op, n in calls.items() if n},
                "wru": round(units["wru"], 3),
                "rru": round(units["rru"], 3),
                "sqs": round(units["sqs"], 3),
                "io_ms": round(self.io_ms[function] - before["io_ms"].get(function, 0), 2),
                "cpu_ms": round((self.cpu_s[function] - before["cpu_s"].get(function, 0)) * 1000, 3),
                "result": result,
                "note": "one tick invocation by the shard's rule with nothing due and no lease held: "
                "what an idle shard costs each minute",
            }

    # thread-local helpers
    def _moto_s(self) -> float:
        return getattr(self.local, "moto_s", 0.0)

    def _add_moto(self, seconds: float) -> None:
        self.local.moto_s = self._moto_s() + seconds
        self.moto_by_thread[threading.get_ident()] = self.local.moto_s

    def function(self) -> str:
        return getattr(self.local, "function", None) or "bench"

    @contextmanager
    def running(self, function: str):
        """Our CPU in this thread while ``function`` runs here (CPU inside moto and the meter excluded)."""
        if getattr(self.local, "function", None) is not None:
            yield  # nested in a measured call of this thread: counted by the outer one
            return
        self.local.function = function
        cpu0, moto0 = time.thread_time(), self._moto_s()
        try:
            yield
        finally:
            ours = (time.thread_time() - cpu0) - (self._moto_s() - moto0)
            self.local.function = None
            with self.lock:
                self.cpu_s[function] += max(0.0, ours)

    # the wrapped call
    def call(self, original: Any, client: Any, operation: str, params: dict[str, Any]) -> Any:
        if not self.enabled:
            return original(client, operation, params)
        service = client.meta.service_model.service_name
        t0 = time.thread_time()
        before = self._before(service, operation, params)
        self._add_moto(time.thread_time() - t0)
        error: Exception | None = None
        response: Any = None
        try:
            response = original(client, operation, params)
        except Exception as exc:  # a refused conditional write costs units all the same
            error = exc
        t1 = time.thread_time()
        try:
            self._account(service, operation, params, response, error, before)
        finally:
            self._add_moto(time.thread_time() - t1)
        if error is not None:
            raise error
        return response

    def _before(self, service: str, operation: str, params: dict[str, Any]) -> Any:
        if service != "dynamodb":
            return None
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or _key_of(params["TableName"], params["Item"])
            return item_size(_peek(params["TableName"], key))
        if operation == "BatchWriteItem":
            sizes = []
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    if "PutRequest" in r:
                        key = _key_of(table, r["PutRequest"]["Item"])
                        size = max(item_size(_peek(table, key)), item_size(r["PutRequest"]["Item"]))
                    else:
                        size = item_size(_peek(table, r["DeleteRequest"]["Key"]))
                    sizes.append((table, size))
            return sizes
        if operation == "TransactWriteItems":
            sizes = []
            for entry in params["TransactItems"]:
                ((kind, body),) = entry.items()
                key = body.get("Key") or _key_of(body["TableName"], body["Item"])
                sizes.append((kind, body["TableName"], key, item_size(_peek(body["TableName"], key))))
            return sizes
        return None

    def _account(
        self,
        service: str,
        operation: str,
        params: dict[str, Any],
        response: Any,
        error: Exception | None,
        before: Any,
    ) -> None:
        op = f"{service}.{operation}"
        function = self.function()
        units: Counter[str] = Counter()
        latency = LATENCY_MS["other"]
        if service == "dynamodb":
            latency = LATENCY_MS["dynamodb"]
            if operation in ("PutItem", "UpdateItem", "DeleteItem"):
                table = params["TableName"]
                after = 0
                if operation == "PutItem" and error is None:
                    after = item_size(params["Item"])
                elif operation == "UpdateItem" and error is None:
                    after = item_size(_peek(table, params["Key"]))
                units["wru"] += write_units(before or 0, after)
                units[f"wru:{table}"] += write_units(before or 0, after)
                units[f"kind_wru:{table}:{_kind(params['Key'])}"] += write_units(before or 0, after)
                self.item_bytes[table] = max(self.item_bytes[table], before or 0, after)
                kind = f"{table}:{_kind(params['Key'])}"
                self.item_bytes[kind] = max(self.item_bytes[kind], before or 0, after)
            elif operation == "BatchWriteItem":
                latency = LATENCY_MS["dynamodb-batch"]
                unprocessed = sum(len(v) for v in (response or {}).get("UnprocessedItems", {}).values())
                sizes = before[: len(before) - unprocessed] if unprocessed else before
                for table, size in sizes:
                    units["wru"] += write_units(size, 0)
                    units[f"wru:{table}"] += write_units(size, 0)
                for table, requests in params["RequestItems"].items():
                    for r in requests:
                        if "PutRequest" in r:
                            size = item_size(r["PutRequest"]["Item"])
                            self.item_bytes[table] = max(self.item_bytes[table], size)
            elif operation == "TransactWriteItems":
                latency = LATENCY_MS["dynamodb-batch"]
                for kind, table, key, old in before:
                    new = 0 if kind in ("Delete", "ConditionCheck") or error else item_size(_peek(table, key))
                    units["wru"] += 2 * write_units(old, new)
            elif operation == "GetItem":
                consistent = bool(params.get("ConsistentRead"))
                units["rru"] += read_units(item_size((response or {}).get("Item")), consistent)
                kind = f"kind_rru:{params['TableName']}:{_kind(params['Key'])}"
                units[kind] += read_units(item_size((response or {}).get("Item")), consistent)
            elif operation == "BatchGetItem":
                latency = LATENCY_MS["dynamodb-batch"]
                for items in (response or {}).get("Responses", {}).values():
                    for item in items:
                        units["rru"] += read_units(item_size(item), False)
            elif operation in ("Query", "Scan"):
                consistent = bool(params.get("ConsistentRead"))
                items = (response or {}).get("Items", [])
                if params.get("ProjectionExpression"):
                    # DynamoDB bills a read by the items it read, not the attributes it returned
                    stored = _peek_many(params["TableName"], [_stored_key(params, i) for i in items])
                    items = [full or i for full, i in zip(stored, items, strict=True)]
                size = sum(item_size(i) for i in items)
                scanned, count = (response or {}).get("ScannedCount", 0), (response or {}).get("Count", 0)
                if scanned > count:  # a filter: what was read, not what was returned, is billed
                    size = int(size / max(count, 1) * scanned) if count else scanned * 200
                units["rru"] += read_units(size, consistent)
                units["query_bytes"] += size
            elif operation == "TransactGetItems":
                for r in (response or {}).get("Responses", []):
                    units["rru"] += 2 * read_units(item_size(r.get("Item")), True)
            else:
                units["other_ddb"] += 1
        elif service == "sqs":
            latency = LATENCY_MS["sqs"]
            if operation == "ReceiveMessage":
                messages = (response or {}).get("Messages", [])
                if not messages:
                    with self.lock:
                        self.empty_receives += 1
                    return
                payload = sum(len(m.get("Body", "").encode()) for m in messages)
            elif operation in ("SendMessageBatch",):
                payload = sum(len(e["MessageBody"].encode()) for e in params["Entries"])
            elif operation == "SendMessage":
                payload = len(params["MessageBody"].encode())
            else:
                payload = 0
            units["sqs"] += max(1, math.ceil(payload / 65536))
        else:
            units[f"{service}_requests"] += 1
        with self.lock:
            self.calls[op] += 1
            self.units[op].update(units)
            self.by_function[function][op] += 1
            self.function_units[(function, op)].update(units)
            self.io_ms[function] += latency


METER = Meter()


@contextmanager
def metered_calls():
    """While inside: every botocore client's API call goes through METER, and the CPU spent inside
    moto is clocked per thread. Both wrappers come off on the way out, so later benchmarks in the
    same process (``make bench``) run without them."""
    from botocore.client import BaseClient
    from moto.core.botocore_stubber import BotocoreStubber

    original = BaseClient._make_api_call
    stub_call = BotocoreStubber.__call__

    def metered(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        return METER.call(original, self, operation_name, api_params)

    def timed_stub(self: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return stub_call(self, event_name, request, **kwargs)
        finally:
            METER._add_moto(time.thread_time() - t0)

    BaseClient._make_api_call = metered  # type: ignore[method-assign]
    BotocoreStubber.__call__ = timed_stub  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
        BotocoreStubber.__call__ = stub_call  # type: ignore[method-assign]


# -- the run -------------------------------------------------------------------------------------
def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payload(i: int, size: int) -> dict[str, Any]:
    body = {"order_id": f"ord-{i:08d}", "amount_cents": 1000 + i % 9000, "currency": "EUR"}
    pad = max(0, size - len(json.dumps(body)) - 12)
    if pad:
        body["note"] = "x" * pad
    return body


def _task_states(table: str) -> Counter[str]:
    from moto.dynamodb.models import dynamodb_backends

    from taskplane.local.moto_patches import _LOCK

    t = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    states: Counter[str] = Counter()
    with _LOCK:
        for item in t.all_items():
            state = item.attrs.get("state")
            if state is not None:
                states[state.value] += 1
    return states


#: The measured targets, the headline's first.
TARGETS = ("http", "echo")
TARGET_WORDS = {
    "http": "an HTTP target (POST to a loopback server answering 200 with a small JSON body)",
    "echo": "the builtin echo target",
}
#: What ``by_target`` keeps of each run.
BY_TARGET_KEYS = (
    "workload",
    "succeeded",
    "lost",
    "units_per_task",
    "cpu_ms_per_task",
    "calls",
    "calls_by_function",
    "item_bytes",
    "tick",
)


def run(
    tasks: int = 10_000,
    batch: int = 100,
    lead_s: float = 5.0,
    spread_s: float = 20.0,
    payload_bytes: int = 200,
    timeout_s: float = 1800.0,
    seed: int = 7,
    targets: tuple[str, ...] = TARGETS,
) -> dict[str, Any]:
    """One run per target; the first's result, with every run's units under ``by_target``."""
    runs = {t: measure(t, tasks, batch, lead_s, spread_s, payload_bytes, timeout_s, seed) for t in targets}
    head = dict(runs[targets[0]])
    head["target"] = targets[0]
    head["by_target"] = {
        t: {"target": TARGET_WORDS[t], **{k: r[k] for k in BY_TARGET_KEYS}} for t, r in runs.items()
    }
    return head


def measure(
    target: str = "http",
    tasks: int = 10_000,
    batch: int = 100,
    lead_s: float = 5.0,
    spread_s: float = 20.0,
    payload_bytes: int = 200,
    timeout_s: float = 1800.0,
    seed: int = 7,
) -> dict[str, Any]:
    saved = dict(os.environ)
    try:
        return _metered(target, tasks, batch, lead_s, spread_s, payload_bytes, timeout_s, seed)
    finally:
        os.environ.clear()
        os.environ.update(saved)


class _Answer(BaseHTTPRequestHandler):
    """The loopback target: reads the envelope, answers 200 with a small JSON body."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = b'{"ok":true}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def loopback_target():
    """A target URL on a threaded loopback server, for the length of the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="http-target", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def _metered(
    target: str,
    tasks: int,
    batch: int,
    lead_s: float,
    spread_s: float,
    payload_bytes: int,
    timeout_s: float,
    seed: int,
) -> dict[str, Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        # metrics on, as deployed: their EMF documents are log bytes CloudWatch bills for
        "POWERTOOLS_METRICS_DISABLED": "false",
        "POWERTOOLS_METRICS_NAMESPACE": "taskplane",
    }.items():
        os.environ[name] = value
    sys.path.insert(0, str(ROOT / "layers" / "core" / "python"))
    sys.path.insert(0, str(ROOT))  # functions.tick.handler (its span)

    from taskplane.local import moto_patches

    METER.__init__()  # type: ignore[misc]  # a fresh count for this run
    moto_patches.apply()
    from taskplane.services import holds

    # A batch's holds go out in one request once its records have started. In AWS the starts overlap
    # within one ~5 ms DynamoDB write; under moto each start costs 10-15 ms of CPU behind the GIL, so
    # ten starts span ~100-150 ms: the window is widened by the same factor (x10), or moto's slowness
    # would be billed as extra requests.
    window, holds.WINDOW_S = holds.WINDOW_S, 0.2
    # What the functions log (INFO, infra/config.py's default) and their EMF metrics go to a sink
    # that counts the bytes CloudWatch Logs would ingest, instead of this terminal.
    from taskplane.observability import logger

    sink = LogSink()
    stream = logger.registered_handler.setStream(sink)  # type: ignore[attr-defined]
    level = logger.log_level
    logger.setLevel("INFO")
    stdout, sys.stdout = sys.stdout, sink
    try:
        with metered_calls(), loopback_target() as url:
            spec = (
                {"type": "http", "url": url, "method": "POST"}
                if target == "http"
                else {"type": "builtin", "name": "echo"}
            )
            result = _run(spec, tasks, batch, lead_s, spread_s, payload_bytes, timeout_s, seed)
    finally:
        sys.stdout = stdout
        logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
        logger.setLevel(level)
        holds.WINDOW_S = window
    per = max(result["succeeded"], 1)
    result["logs"] = {
        "level": "INFO",
        "bytes_per_task": round(sink.bytes / per, 1),
        "lines_per_task": round(sink.lines / per, 3),
        "note": "every log line and EMF metrics document the handlers wrote during the run (the bench's "
        "own threads print nothing), as CloudWatch Logs would ingest them",
    }
    result["units_per_task"]["log_bytes"] = result["logs"]["bytes_per_task"]
    return result


class LogSink(io.TextIOBase):
    """A stream that only counts what is written to it."""

    def __init__(self) -> None:
        self.bytes = 0
        self.lines = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.bytes += len(text.encode())
            self.lines += text.count("\n")
        return len(text)

    def writable(self) -> bool:
        return True


def _run(
    target: dict[str, Any],
    tasks: int,
    batch: int,
    lead_s: float,
    spread_s: float,
    payload_bytes: int,
    timeout_s: float,
    seed: int,
) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from taskplane import wiring
    from taskplane.local.context import LocalContext
    from taskplane.local.gateway import build_event
    from taskplane.local.handlers import load_handler
    from taskplane.local.poller import to_record
    from taskplane.local.resources import create_resources

    rng = random.Random(seed)
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        # The deployed backpressure threshold (infra/config.py's default), not taskplane dev's 2,000:
        # moto's worker falls far behind the API, and a 429 is a cost a deployment does not pay.
        # (HTTP targets may name the loopback server: allowed here as in the tests, never by default)
        settings = create_resources(session).model_copy(
            update={"max_lane_depth": 50_000, "allow_private_http": True}
        )
        platform = wiring.build(settings, session=session)
        wiring.use(platform)
        api = load_handler("api").lambda_handler
        worker_module = load_handler("worker")
        worker = worker_module.lambda_handler
        # each record runs in its own thread: all of it (its hold's flush included) is the worker's
        processor = worker_module.ConcurrentBatchProcessor
        process_record = processor._process_record

        def measured_record(self: Any, record: Any) -> Any:
            # Our CPU before the record's start write (parsing, the wait's set-up) and after it: the
            # split bench/wheel_lateness.py's worker model spends before the wait and after the start.
            METER.local.record_began = (time.thread_time(), METER._moto_s())
            METER.local.start_mark = None
            try:
                with METER.running("worker"):
                    return process_record(self, record)
            finally:
                METER.split_record(time.thread_time(), METER._moto_s())

        processor._process_record = measured_record
        from taskplane.adapters.task_store import TaskStore

        transition = TaskStore.transition

        def marked_transition(self: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(METER.local, "record_began", None) and METER.local.start_mark is None:
                METER.local.start_mark = (time.thread_time(), METER._moto_s())
            return transition(self, *args, **kwargs)

        TaskStore.transition = marked_transition  # type: ignore[method-assign]
        tick = load_handler("tick").lambda_handler
        sqs = session.client("sqs")
        arns = {
            url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for url in settings.queue_urls.values()
        }
        key_ids = {"bench-key": "acme"}
        stop = threading.Event()
        batch_sizes: list[int] = []
        dispatch_late_ms: list[int] = []

        # the tick: shard 0 again and again, as EventBridge runs it every minute
        ticker = platform.ticker
        send_batch = ticker._send_batch

        def measured_send(entries: list[Any]) -> Any:
            cpu0, moto0 = time.thread_time(), METER._moto_s()
            try:
                with METER.running("tick"):
                    return send_batch(entries)
            finally:
                ours = max(0.0, (time.thread_time() - cpu0) - (METER._moto_s() - moto0))
                with METER.lock:
                    METER.tick_send_s += ours
                    METER.tick_sent += len(entries)

        ticker._send_batch = measured_send  # type: ignore[method-assign]

        # The shard's rule runs the tick once a minute; the api and the worker wake it (an asynchronous
        # invoke in AWS, counted as a tick invocation here) when an entry lands due soon and no tick
        # holds the shard. The tick's span is the handler's (5 minutes), as deployed.
        woken = threading.Event()
        platform.wakes.wake = lambda shard: woken.set()
        tick_runs: list[dict[str, Any]] = []
        tick_held_s = [0.0]
        tick_errors: Counter[str] = Counter()

        # The tick's window reads (one per wheel slot its window spans, each poll), counted for
        # TickSampler: the store is shared, only the tick loop's calls count.
        tick_ident: list[int] = []
        wheel_store = ticker.wheel
        load_entries = wheel_store.load
        tick_loads = [0]

        def counted_load(*args: Any, **kwargs: Any) -> Any:
            if tick_ident and threading.get_ident() == tick_ident[0]:
                tick_loads[0] += 1
            return load_entries(*args, **kwargs)

        wheel_store.load = counted_load  # type: ignore[method-assign]

        def tick_loop() -> None:
            tick_ident.append(threading.get_ident())
            while not stop.is_set():
                woken.clear()
                METER.invocations["tick"] += 1
                began = time.perf_counter()
                with METER.running("tick"):
                    try:
                        tick_runs.append(
                            tick({"shard": 0}, LocalContext(function_name="taskplane-tick", timeout_s=360))
                        )
                    except Exception as exc:  # the rule runs it again; the run reports why it stopped
                        tick_errors[f"{type(exc).__name__}: {exc}"[:200]] += 1
                        stop.wait(1)
                if tick_runs and tick_runs[-1].get("acquired"):
                    tick_held_s[0] += time.perf_counter() - began  # the shard held: the tick is busy
                rule = time.monotonic() + 60
                while not stop.is_set() and not woken.wait(min(0.5, max(0.0, rule - time.monotonic()))):
                    if time.monotonic() >= rule:
                        break

        # the worker's records: each runs in its own thread (ConcurrentBatchProcessor)
        executor = platform.executor
        handle = executor.handle

        def measured_handle(delivery: Any, hold: Any = None) -> Any:
            with METER.running("worker"):
                return handle(delivery, hold)

        executor.handle = measured_handle  # type: ignore[method-assign]
        # The target's call runs on the executor's pool (another thread): its CPU is the worker's too.
        run_target = executor.runners.run

        def measured_target(*args: Any, **kwargs: Any) -> Any:
            with METER.running("worker"):
                return run_target(*args, **kwargs)

        executor.runners.run = measured_target  # type: ignore[method-assign]
        # How many writes one target-minute's durations take (the parts they fall in): pricing
        # turns it into the sketch's writes per task at a day's load (a write per target and worker
        # instance at most every FLUSH_EVERY_MS; this process is one instance at a far higher rate).
        if executor.latencies is not None:
            sketch_store = executor.latencies.store
            add_sketch = sketch_store.add

            def counted_add(*args: Any, **kwargs: Any) -> int:
                writes = add_sketch(*args, **kwargs)
                with METER.lock:
                    METER.sketch["adds"] += 1
                    METER.sketch["writes"] += writes
                return writes

            sketch_store.add = counted_add  # type: ignore[method-assign]

        def esm_loop(url: str) -> None:
            while not stop.is_set():
                with METER.running("esm"):
                    messages = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
                    ).get("Messages", [])
                if not messages:
                    stop.wait(0.05)
                    continue
                batch_sizes.append(len(messages))
                with METER.lock:
                    METER.invocations["worker"] += 1
                event = {"Records": [to_record(m, arns[url]) for m in messages]}
                with METER.running("worker"):
                    response = worker(event, LocalContext(function_name="taskplane-worker"))
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                done = [m for m in messages if m["MessageId"] not in failed]
                if done:
                    with METER.running("esm"):
                        sqs.delete_message_batch(
                            QueueUrl=url,
                            Entries=[
                                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                                for i, m in enumerate(done)
                            ],
                        )

        METER.enabled = True
        threads = [threading.Thread(target=tick_loop, name="tick-0", daemon=True)]
        # like the event source mapping's pollers: several batches of a lane in flight at once
        threads += [
            threading.Thread(target=esm_loop, args=(url,), name=f"esm-{lane}-{k}", daemon=True)
            for lane, url in settings.queue_urls.items()
            for k in range(4 if lane == "default" else 1)
        ]
        for t in threads:
            t.start()
        tick_began = time.perf_counter()
        sampler = TickSampler(
            lambda: (
                (
                    _thread_cpu_s(tick_ident[0]) - METER.moto_by_thread.get(tick_ident[0], 0.0)
                    if tick_ident
                    else 0.0
                )
                + METER.tick_send_s
            ),
            lambda: tick_loads[0],
            lambda: METER.tick_sent,
        )
        sampling = threading.Thread(target=sampler.run, args=(stop,), name="tick-sampler", daemon=True)
        sampling.start()

        began = time.perf_counter()
        accepted = 0
        api_errors: Counter[int | str] = Counter()
        states: Counter[str] = Counter()
        try:
            # Tasks go in batches of ``batch``; tasks the API refuses as throttled (its lane is over
            # the depth threshold: moto's worker is slower than the API) are sent again after the
            # Retry-After, as a client does. Refusals are counted in ``api_errors``; their requests in
            # the units (they are what backpressure costs).
            backlog = list(range(tasks))
            while backlog:
                chunk, backlog = backlog[:batch], backlog[batch:]
                now = int(time.time() * 1000)
                body = {
                    "tasks": [
                        {
                            "target": target,
                            "payload": _payload(i, payload_bytes),
                            "run_at": _iso(now + int((lead_s + rng.random() * spread_s) * 1000)),
                        }
                        for i in chunk
                    ]
                }
                headers = {"content-type": "application/json", "x-api-key": "bench-key"}
                event = build_event(
                    "POST", "/v1/tasks/batch", headers, json.dumps(body).encode(), key_ids, "127.0.0.1"
                )
                METER.invocations["api"] += 1
                with METER.running("api"):
                    reply = api(event, LocalContext(function_name="taskplane-api"))
                if reply["statusCode"] == 429:
                    api_errors[429] += 1
                    backlog = chunk + backlog
                    time.sleep(float((reply.get("headers") or {}).get("Retry-After", 1)))
                    continue
                if reply["statusCode"] >= 300:
                    api_errors[reply["statusCode"]] += 1
                    continue
                results = json.loads(reply["body"]).get("results", [])
                accepted += sum(1 for r in results if "task_id" in r)
                refused = [
                    chunk[r["index"]] for r in results if r.get("error", {}).get("code") == "throttled"
                ]
                for r in results:
                    if "error" in r:
                        api_errors[f"task:{r['error']['code']}"] += 1
                if refused:
                    backlog = refused + backlog
                    time.sleep(1.0)
            submitted_s = time.perf_counter() - began

            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                states = _task_states(settings.tasks_table)
                if states.get("SUCCEEDED", 0) >= accepted:
                    break
                time.sleep(1.0)
            wall_s = time.perf_counter() - began
        finally:
            stop.set()
            platform.stop.set()
            tick_s = time.perf_counter() - tick_began
            for t in threads:
                t.join(80)
            sampling.join(5)
        # One check of an idle shard, as the rule makes it once a minute: nothing due, no lease held.
        # (The bench stopped its tick abruptly: the first check may still find the last entries in
        # the look-back and send them again; the one after it is what an idle minute costs.)
        platform.stop.clear()
        idle_check: dict[str, Any] = {}
        for _ in range(3):
            time.sleep(3)
            before = METER.snapshot()
            with METER.running("tick_check"):
                check = tick({"shard": 0}, LocalContext(function_name="taskplane-tick", timeout_s=360))
            idle_check = METER.since(before, "tick_check", check)
            if not check["acquired"]:
                break
        METER.enabled = False
        for item in _lateness(settings.tasks_table):
            dispatch_late_ms.append(item)
        processor._process_record = process_record
        TaskStore.transition = transition  # type: ignore[method-assign]
        wiring.use(None)

    succeeded = states.get("SUCCEEDED", 0)
    result = summarize(
        target,
        tasks,
        accepted,
        succeeded,
        states,
        api_errors,
        batch,
        batch_sizes,
        submitted_s,
        wall_s,
        payload_bytes,
        dispatch_late_ms,
        tick_s,
    )
    result["idle_check"] = idle_check
    result["tick"].update(sampler.report())
    fit = result["tick"]["cpu_fit"]
    if fit is not None:
        # The rate-independent statement of the tick's CPU per task (see TickSampler): what the capacity
        # model and the harness's throttled tick take; the run's own mix is kept beside it.
        run_ms = result["tick"]["cpu_ms_per_task"]
        result["tick"]["cpu_ms_per_task_run"] = run_ms
        result["tick"]["cpu_ms_per_task"] = fit["cpu_ms_per_task_at_reference"]
        share = min(MEMORY_MB["tick"], FULL_VCPU_MB) / FULL_VCPU_MB
        result["tick"]["tasks_per_s_per_shard"] = round(share * 1000 / fit["cpu_ms_per_task_at_reference"], 1)
    # The tick's lease writes and window reads happen while it holds the shard: per second of that.
    held = tick_held_s[0] or result["tick"]["run_s"]
    for name, total in (
        ("lease_wru_per_s", result["tick"]["lease_wru_total"]),
        ("lease_rru_per_s", result["tick"]["lease_rru_total"]),
        ("queries_per_s", result["tick"]["queries_total"]),
        ("query_rru_per_s", result["tick"]["query_rru_total"]),
    ):
        result["tick"][name] = round(total / held, 3) if held else None
    result["tick"]["held_s"] = round(held, 1)
    result["tick"]["runs"] = len(tick_runs)
    # A tick that raised, or lost its lease, is taken over from its last saved point: entries in its
    # look-back are sent again (the worker refuses their second start write), which costs units.
    result["tick"]["errors"] = dict(tick_errors)
    result["tick"]["runs_that_lost_the_lease"] = sum(1 for r in tick_runs if r.get("lost_lease"))
    result["tick"]["leases_regained"] = sum(r.get("lease_regained", 0) for r in tick_runs)
    result["tick"]["runs_that_held_the_shard"] = sum(1 for r in tick_runs if r.get("acquired"))
    return result


#: The rate at which the tick's CPU per task is stated (cost.json ``tick.cpu_ms_per_task``, from
#: which the capacity model and the harness's throttled tick work): about what one shard carries as
#: deployed at 1,000 due/s, and about what this run's shard carried while it held the shard.
TICK_REFERENCE_PER_S = 100


def _thread_cpu_s(ident: int) -> float:
    """Another thread's CPU time so far (Linux: the thread's own CPU clock)."""
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError):
        return 0.0


class TickSampler:
    """Samples, once a second, the tick's CPU (its loop thread and its senders, ours: moto's excluded),
    the window reads it made and the entries it sent, and fits the CPU to the two:

        CPU in a second = per_load x window reads + per_entry x entries sent

    (least squares over the seconds it ran, no intercept). A tick's CPU has a part per poll (each
    Query's floor, re-reading the sort keys of what it already took, the heap and the lease) that it
    spends whether or not anything leaves, and a part per entry; the run's total divided by its tasks
    mixes the two in whatever proportion the run's shape gave (how long the tick held the shard while
    the slower moto worker drained the lanes: 0.14-0.37 ms per task in four runs of the same code). The
    fit states it at ``TICK_REFERENCE_PER_S`` tasks and the design's window reads a second
    (``design_reads_per_s``), the run's own read rate beside it."""

    def __init__(self, cpu_s: Any, loads: Any, sent: Any, every_s: float = 1.0) -> None:
        self.cpu_s, self.loads, self.sent, self.every_s = cpu_s, loads, sent, every_s
        self.samples: list[tuple[float, float, int, int]] = []  # (monotonic, cpu_s, loads, sent)

    def sample(self) -> None:
        self.samples.append((time.monotonic(), self.cpu_s(), self.loads(), self.sent()))

    def run(self, stop: threading.Event) -> None:
        self.sample()
        while not stop.wait(self.every_s):
            self.sample()
        self.sample()

    def report(self) -> dict[str, Any]:
        return fit_tick_cpu(self.samples, reads_per_s=design_reads_per_s())


def design_reads_per_s() -> float:
    """The window reads a busy tick makes a second by design: one every POLL_MS, two when its range
    crosses a slot's end (domain/wheel.py). Under moto the loop polls slower than that (its reads
    wait on moto's threads): the run's own rate, 5-8 a second in runs of the 100 ms design, moved the
    figure between runs."""
    from taskplane.domain.wheel import LOOKAHEAD_MS, LOOKBACK_EVERY_MS, LOOKBACK_MS, POLL_MS, SLOT_MS

    reach = LOOKAHEAD_MS + LOOKBACK_MS * min(1.0, POLL_MS / LOOKBACK_EVERY_MS)
    return 1000 / POLL_MS * (1 + reach / SLOT_MS)


def fit_tick_cpu(
    samples: list[tuple[float, float, int, int]],
    reference_per_s: int = TICK_REFERENCE_PER_S,
    reads_per_s: float | None = None,
) -> dict[str, Any]:
    """The fit ``TickSampler`` describes, from cumulative samples (time s, CPU s, loads, entries sent):
    ms per window read, ms per entry, the window reads per second while reading, and from them the CPU
    per task at ``reference_per_s`` tasks and ``reads_per_s`` window reads a second (the run's own
    read rate when None; None when the samples cannot separate the two)."""
    rows = [
        (c1 - c0, l1 - l0, e1 - e0, t1 - t0)
        for (t0, c0, l0, e0), (t1, c1, l1, e1) in itertools.pairwise(samples)
    ]
    rows = [r for r in rows if r[1] or r[2]]  # seconds the tick did something
    sll = sum(r[1] * r[1] for r in rows)
    see = sum(r[2] * r[2] for r in rows)
    sle = sum(r[1] * r[2] for r in rows)
    scl = sum(r[0] * r[1] for r in rows)
    sce = sum(r[0] * r[2] for r in rows)
    det = sll * see - sle * sle
    if not rows or det <= 0 or det < 1e-9 * sll * see:
        return {"cpu_fit": None}
    per_load_s = (scl * see - sce * sle) / det
    per_entry_s = (sce * sll - scl * sle) / det
    reading_s = sum(r[3] for r in rows if r[1])
    loads_per_s = sum(r[1] for r in rows) / reading_s if reading_s else 0.0
    residual = [r[0] - per_load_s * r[1] - per_entry_s * r[2] for r in rows]
    stated_reads = loads_per_s if reads_per_s is None else reads_per_s
    at_reference = (per_load_s * stated_reads + per_entry_s * reference_per_s) / reference_per_s
    at_run_reads = (per_load_s * loads_per_s + per_entry_s * reference_per_s) / reference_per_s
    return {
        "cpu_fit": {
            "seconds": len(rows),
            "ms_per_window_read": round(per_load_s * 1000, 4),
            "ms_per_entry": round(per_entry_s * 1000, 4),
            "window_reads_per_s": round(loads_per_s, 2),
            "residual_ms_per_s_rms": round(math.sqrt(sum(x * x for x in residual) / len(rows)) * 1000, 3),
            "reference_per_s": reference_per_s,
            "reference_reads_per_s": round(stated_reads, 2),
            "cpu_ms_per_task_at_reference": round(at_reference * 1000, 4),
            "cpu_ms_per_task_at_run_reads": round(at_run_reads * 1000, 4),
        }
    }


def _lateness(table: str) -> list[int]:
    """started_at - run_at of every task (what the tick and worker made of due times under moto)."""
    from moto.dynamodb.models import dynamodb_backends

    t = dynamodb_backends[ACCOUNT][REGION].get_table(table)
    out = []
    for item in t.all_items():
        data = item.to_json()["Attributes"]
        if "started_at" in data and "run_at" in data:
            out.append(int(data["started_at"]["N"]) - int(data["run_at"]["N"]))
    return out


def summarize(
    target: dict[str, Any],
    tasks: int,
    accepted: int,
    succeeded: int,
    states: Counter[str],
    api_errors: Counter[int | str],
    batch: int,
    batch_sizes: list[int],
    submitted_s: float,
    wall_s: float,
    payload_bytes: int,
    lateness: list[int],
    tick_s: float,
) -> dict[str, Any]:
    from functions.tick.handler import TICK_SPAN_MS
    from taskplane.services.tick import HANDOVER_MS

    per = max(succeeded, 1)
    # The tick's lease/cursor writes and its window reads happen every second whatever the load:
    # they are reported per shard and second (priced by time), not per task.
    by_time = {("tick", "dynamodb.UpdateItem"), ("tick", "dynamodb.PutItem"), ("tick", "dynamodb.GetItem")}
    totals: Counter[str] = Counter()
    lease: Counter[str] = Counter()
    for (function, op), units in METER.function_units.items():
        if function == "tick_check":
            continue  # the idle check after the run: reported apart (idle_check)
        if (function, op) in by_time:
            lease.update(units)
        elif (function, op) == ("tick", "dynamodb.Query"):
            continue
        else:
            totals.update(units)
    query = METER.function_units[("tick", "dynamodb.Query")]
    queries = METER.by_function["tick"]["dynamodb.Query"]
    cpu_ms_per_task = {f: round(METER.cpu_s[f] * 1000 / per, 3) for f in ("api", "worker", "tick", "esm")}

    def billed_s(function: str) -> float:
        """Billed seconds per task: our CPU at the memory's vCPU share, plus the calls' latency."""
        cpu = METER.cpu_s[function] * FULL_VCPU_MB / min(MEMORY_MB[function], FULL_VCPU_MB)
        io = METER.io_ms[function] / 1000
        if function == "worker":
            # a batch's records wait on their calls at the same time: the batch waits about one record's
            io /= statistics.mean(batch_sizes) if batch_sizes else 1
        return (cpu + io) / per

    lambda_gb_s = {f: round(billed_s(f) * MEMORY_MB[f] / 1024, 6) for f in ("api", "worker")}
    lambda_gb_s_cpu = {
        f: round(
            METER.cpu_s[f] * FULL_VCPU_MB / min(MEMORY_MB[f], FULL_VCPU_MB) / per * MEMORY_MB[f] / 1024, 6
        )
        for f in ("api", "worker")
    }
    tick_tasks_per_cpu_s = per / METER.cpu_s["tick"] if METER.cpu_s["tick"] else None
    counted: Counter[str] = Counter()
    op_units: dict[str, Counter[str]] = defaultdict(Counter)
    for (function, op), units in METER.function_units.items():
        if function != "tick_check":  # the idle check after the run is reported apart
            counted[op] += METER.by_function[function][op]
            op_units[op].update(units)
    calls = {
        op: {
            "count": count,
            "per_task": round(count / per, 4),
            "wru": round(op_units[op].get("wru", 0) / per, 4),
            "rru": round(op_units[op].get("rru", 0) / per, 4),
            "sqs": round(op_units[op].get("sqs", 0) / per, 4),
        }
        for op, count in sorted(counted.items())
    }
    late = sorted(lateness)
    return {
        "tasks": tasks,
        "accepted": accepted,
        "succeeded": succeeded,
        "lost": accepted - succeeded,
        "states": dict(states),
        "api_errors": {str(k): v for k, v in api_errors.items()},
        "workload": (
            f"{tasks:,} delayed tasks, each due {5}-{25} s after its batch was submitted, "
            f"{TARGET_WORDS['http' if target['type'] == 'http' else 'echo']}, "
            f"payload ~{payload_bytes} B, submitted through the API handler in batches of {batch}; "
            "tick shard 0; worker batches of up to 10 from an event-source-mapping loop"
        ),
        "units_per_task": {
            "dynamodb_wru": round(totals["wru"] / per, 4),
            "dynamodb_rru": round(totals["rru"] / per, 4),
            "dynamodb_wru_by_table": {
                k.split(":", 1)[1]: round(v / per, 4)
                for k, v in sorted(totals.items())
                if k.startswith("wru:")
            },
            "dynamodb_index_wru": 0.0,
            # the control table's writes and reads by what the item is (breaker#, sketch#, ...)
            "dynamodb_by_item_kind": {
                k.removeprefix("kind_"): round(v / per, 4)
                for k, v in sorted(totals.items())
                if k.startswith(("kind_wru:", "kind_rru:")) and "control" in k
            },
            # the duration sketch's adds (one per target, minute and flush) and the writes they took
            "sketch_adds": METER.sketch["adds"],
            "sketch_writes_per_add": round(METER.sketch["writes"] / METER.sketch["adds"], 3)
            if METER.sketch["adds"]
            else 0.0,
            "sqs_requests": round(totals["sqs"] / per, 4),
            "apigw_requests": round(METER.invocations["api"] / per, 4),
            "lambda_requests": {f: round(METER.invocations[f] / per, 4) for f in ("api", "worker")},
            "lambda_gb_s": lambda_gb_s,
            "lambda_gb_s_cpu": lambda_gb_s_cpu,
            "note": "lambda_gb_s = (our CPU at the memory's vCPU share + the calls' latency at "
            "latency_assumed_ms, a batch's records overlapping) x memory; lambda_gb_s_cpu is the CPU "
            "part alone; the tick's time-based units are in tick, not here",
        },
        "tick": {
            "memory_mb": MEMORY_MB["tick"],
            # busy, a tick runs a span and its successor waits for its lease at the end of it
            "duty": round(1 + HANDOVER_MS / TICK_SPAN_MS, 4),
            "cpu_ms_per_task": cpu_ms_per_task["tick"],
            "tasks_per_s_per_shard": (
                round(tick_tasks_per_cpu_s * min(MEMORY_MB["tick"], FULL_VCPU_MB) / FULL_VCPU_MB, 1)
                if tick_tasks_per_cpu_s
                else None
            ),
            "invocations": METER.invocations["tick"],
            "run_s": round(tick_s, 1),
            "lease_wru_total": lease["wru"],
            "lease_rru_total": lease["rru"],
            "queries_total": queries,
            "query_rru_total": query["rru"],
            "query_bytes_per_task": round(query["query_bytes"] / per, 1),
            "query_rru_per_task": round(query["rru"] / per, 4),
            "note": "tasks/s one shard's tick could dispatch at its memory's vCPU share, from its measured "
            "CPU per task (moto excluded); its lease writes and window reads are per second it held the "
            "shard (held_s): it runs while anything is due within 75 s",
        },
        "cpu_ms_per_task": cpu_ms_per_task,
        "worker_cpu_split_ms": {
            "before_start": round(METER.split["before_start"] * 1000 / max(1, METER.split["records"]), 3),
            "after_start": round(METER.split["after_start"] * 1000 / max(1, METER.split["records"]), 3),
            "records": METER.split["records"],
            "note": "our CPU per started record (moto's excluded) before its start write (parsing, the "
            "batch's share) and from it to the end (start, target, finish); bench/wheel_lateness.py's "
            "worker model spends the first before the wait, the second after the start",
        },
        "io_ms_per_task": {f: round(METER.io_ms[f] / per, 3) for f in sorted(METER.io_ms)},
        "memory_mb": dict(MEMORY_MB),
        "latency_assumed_ms": dict(LATENCY_MS),
        "worker_batch_mean": round(statistics.mean(batch_sizes), 2) if batch_sizes else None,
        "empty_receives": METER.empty_receives,
        "calls": calls,
        "calls_by_function": {f: dict(c) for f, c in sorted(METER.by_function.items()) if f != "tick_check"},
        "requests": [
            {
                "function": function,
                "request": op,
                "per_task": round(METER.by_function[function][op] / per, 4),
                "wru": round(units.get("wru", 0) / per, 4),
                "rru": round(units.get("rru", 0) / per, 4),
                "sqs": round(units.get("sqs", 0) / per, 4),
                "by_time": (function, op) in by_time or (function, op) == ("tick", "dynamodb.Query"),
            }
            for (function, op), units in sorted(METER.function_units.items())
            if function != "tick_check"
        ],
        "item_bytes": {
            "task_max": METER.item_bytes.get("taskplane-tasks", 0),
            "wheel_entry_max": METER.item_bytes.get("taskplane-wheel", 0),
            **{f"table:{t}": b for t, b in sorted(METER.item_bytes.items())},
        },
        "start_late_ms_under_moto": {
            "p50": late[len(late) // 2] if late else None,
            "p99": late[min(len(late) - 1, int(0.99 * len(late)))] if late else None,
            "note": "started_at - run_at in this run, on moto and a shared CPU: not the design's lateness "
            "(bench/wheel_lateness.py measures that)",
        },
        "submit_s": round(submitted_s, 1),
        "wall_s": round(wall_s, 1),
        "note": (
            "every request of every boto3 client counted by wrapping botocore's _make_api_call; units "
            "from request/response sizes by DynamoDB's and SQS's billing rules; CPU per function by "
            "thread CPU time minus the CPU inside moto in the same thread; X-Ray tracing off"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--targets", default=",".join(TARGETS), help="the first is the headline's")
    args = parser.parse_args()
    result = run(
        args.tasks,
        payload_bytes=args.payload_bytes,
        timeout_s=args.timeout_s,
        targets=tuple(args.targets.split(",")),
    )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        json.dumps(
            {k: result[k] for k in ("tasks", "succeeded", "lost", "units_per_task", "tick", "wall_s")},
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
