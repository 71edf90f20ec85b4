"""A loopback OTLP/HTTP receiver that decodes what it gets (protobuf, as a collector would).

``OtlpReceiver().start()`` listens on 127.0.0.1 (a free port); point ``TASKPLANE_OTLP_ENDPOINT`` at
``receiver.url``. It keeps every span and metric point of every request, decoded with the
``opentelemetry-proto`` messages, and answers 200 (or, with ``fail_with``, that status; with
``hang_s``, only after that long, to stand for a collector that does not answer).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def value_of(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value_of(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value_of(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind) if kind else None


def attributes_of(pairs: Any) -> dict[str, Any]:
    return {kv.key: value_of(kv.value) for kv in pairs}


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    attributes: dict[str, Any]
    status: str
    status_message: str
    links: list[tuple[str, str]]
    start_ns: int
    end_ns: int
    resource: dict[str, Any]


@dataclass
class Point:
    name: str
    unit: str
    kind: str  # "sum" | "histogram" | "gauge"
    attributes: dict[str, Any]
    value: float  # a sum's or gauge's value; a histogram's count
    total: float = 0.0  # a histogram's sum
    monotonic: bool = False
    temporality: int = 0  # 1 delta, 2 cumulative
    time_ns: int = 0
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.points: list[Point] = []
        self.requests: list[tuple[str, int]] = []  # (path, body bytes) per request
        self.fail_with: int | None = None
        self.hang_s = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                body = (
                    gzip.decompress(raw)
                    if encoding == "gzip"
                    else zlib.decompress(raw)
                    if encoding == "deflate"
                    else raw
                )
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)
                with receiver._lock:
                    receiver.requests.append((self.path, len(raw)))
                if receiver.fail_with is not None:
                    self.send_response(receiver.fail_with)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path == "/v1/traces":
                    receiver._traces(body)
                    answer = ExportTraceServiceResponse().SerializeToString()
                elif self.path == "/v1/metrics":
                    receiver._metrics(body)
                    answer = ExportMetricsServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                # GET /stats: what was received, for a receiver run in another process (bench/otlp.py).
                answer = json.dumps(receiver.stats()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- decoding ----------------------------------------------------------------------------------
    def _traces(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for rs in request.resource_spans:
            resource = attributes_of(rs.resource.attributes)
            for ss in rs.scope_spans:
                for s in ss.spans:
                    spans.append(
                        Span(
                            trace_id=s.trace_id.hex(),
                            span_id=s.span_id.hex(),
                            parent_span_id=s.parent_span_id.hex(),
                            name=s.name,
                            kind=KINDS.get(s.kind, str(s.kind)),
                            attributes=attributes_of(s.attributes),
                            status=STATUS.get(s.status.code, str(s.status.code)),
                            status_message=s.status.message,
                            links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                            start_ns=s.start_time_unix_nano,
                            end_ns=s.end_time_unix_nano,
                            resource=resource,
                        )
                    )
        with self._lock:
            self.spans.extend(spans)

    def _metrics(self, body: bytes) -> None:
        request = ExportMetricsServiceRequest.FromString(body)
        points = []
        for rm in request.resource_metrics:
            resource = attributes_of(rm.resource.attributes)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind == "sum":
                        for p in m.sum.data_points:
                            value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            points.append(
                                Point(
                                    m.name,
                                    m.unit,
                                    "sum",
                                    attributes_of(p.attributes),
                                    float(value),
                                    monotonic=m.sum.is_monotonic,
                                    temporality=m.sum.aggregation_temporality,
                                    time_ns=p.time_unix_nano,
                                    resource=resource,
                                )
                            )
                    elif kind == "histogram":
                        for p in m.histogram.data_points:
                            points.append(
                                Point(
                                    m.name,
                                    m.unit,
                                    "histogram",
                                    attributes_of(p.attributes),
                                    float(p.count),
                                    total=p.sum,
                                    temporality=m.histogram.aggregation_temporality,
                                    time_ns=p.time_unix_nano,
                                    resource=resource,
                                )
                            )
                    elif kind == "gauge":
                        for p in m.gauge.data_points:
                            value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                            points.append(
                                Point(m.name, m.unit, "gauge", attributes_of(p.attributes), float(value))
                            )
        with self._lock:
            self.points.extend(points)

    # -- reading -----------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "spans": len(self.spans),
                "points": len(self.points),
                "requests": {
                    path: sum(1 for p, _ in self.requests if p == path)
                    for path in ("/v1/traces", "/v1/metrics")
                },
                "bytes": {
                    path: sum(n for p, n in self.requests if p == path)
                    for path in ("/v1/traces", "/v1/metrics")
                },
                "span_names": sorted({s.name for s in self.spans}),
            }

    def reset(self) -> None:
        with self._lock:
            self.spans.clear()
            self.points.clear()
            self.requests.clear()

    def all_spans(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def all_points(self) -> list[Point]:
        with self._lock:
            return list(self.points)

    def trace(self, trace_id: str) -> list[Span]:
        return sorted((s for s in self.all_spans() if s.trace_id == trace_id), key=lambda s: s.start_ns)

    def latest(self, name: str, **attributes: Any) -> Point | None:
        """The last exported point of metric ``name`` whose attributes include ``attributes``
        (cumulative sums: the running total)."""
        found = [
            p
            for p in self.all_points()
            if p.name == name and all(p.attributes.get(k) == v for k, v in attributes.items())
        ]
        return found[-1] if found else None

    def total(self, name: str, **attributes: Any) -> float:
        """The count of metric ``name`` over every matching series: delta points added up, and the
        last point of each cumulative series (a series is its attributes and its instance)."""
        series: dict[Any, list[Point]] = {}
        for p in self.all_points():
            if p.name == name and all(p.attributes.get(k) == v for k, v in attributes.items()):
                key = (tuple(sorted(p.attributes.items())), p.resource.get("service.instance.id"))
                series.setdefault(key, []).append(p)
        return sum(
            sum(p.value for p in points) if points[-1].temporality == 1 else points[-1].value
            for points in series.values()
        )

    def wait_for(self, check: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        """Poll ``check`` until it answers something truthy (its answer), or fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"the receiver did not get what was expected within {timeout_s} s")
            time.sleep(0.02)


if __name__ == "__main__":  # a receiver in its own process: prints its URL, serves until killed
    import sys

    r = OtlpReceiver().start()
    print(r.url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    r.stop()
