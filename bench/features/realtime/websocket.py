"""Fan events out to 1,000 WebSocket clients: deliveries/s, delivery latency, memory per socket.

Run from the repository root:

    .venv/bin/python bench/features/realtime/websocket.py [--connections 1000]
                                                          [--rates 10,20,30,50,100]

Keel runs as `keel serve` with bench/run.py's production settings on PostgreSQL (`keel_bench`),
plus `KEEL_REDIS_URL`, so events travel over Redis pub/sub as they do in production. The
baseline is `ws_baseline_app.py` (next to this script), a bare Starlette app under the same
uvicorn that subscribes to its own Redis channel and broadcasts to its sockets. Both run on
CPU 0, both with the same permessage-deflate setting (`--server-compression`, by default
Keel's: off).

One admin account logs in through Keel's API; `--connections` sockets to each server use its
token with `scope=all`, so every socket receives every event. Client processes pinned to
CPU 1 hold the sockets (the `websockets` library's sans-I/O protocol, with a fast path of
their own for plain text frames; see `BenchSocket`). This process publishes events straight
into each server's channel, in the exact wire format `keel.core.events.Event.encode()`
produces (what an API process or a `keel worker` publishes), with the send time
(`time.time_ns()`) in `data`; each client computes the delivery latency on arrival.

Measured, for each server in the same run:
  - memory per idle connection: the server's VmRSS before and after `--connections`
    authenticated idle sockets, divided by their number (and again after the steps, once
    every socket has carried events);
  - for each publish rate in `--rates` (alternating Keel and the baseline at each rate): the
    deliveries per second, p50/p99 delivery latency, missing events and `lagged` notices. A
    server stops climbing after its first rate that is not sustained (an event missed, a
    `lagged` notice, or p99 above `--p99-bound-ms`), then gets one step at
    `--overload-factor` times that rate, which must announce every loss with `lagged`;
  - the server's memory while all the sockets are closed and opened again
    (`--reconnect-cycles`), to catch memory kept per connection.
Results are printed and written to `bench/results/websocket.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing
import os
import resource
import secrets
import signal
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx
import uvloop
from redis.asyncio import Redis
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    enable_client_permessage_deflate,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for run.py

import run as run_module
from keel.core.events import Event
from keel.settings import Settings
from run import (
    HOST,
    JWT_AUDIENCE,
    JWT_ISSUER,
    LOAD_CPU,
    REPO_ROOT,
    RESULTS_DIR,
    UNREACHABLE_RATE_LIMIT,
    BenchError,
    Server,
    Shared,
    _promote_to_admin,
    bearer,
    bench_database_url,
    clean_environment,
    ensure_database,
    free_ports,
    keel_client,
    keel_command,
    keel_environment,
    login,
    machine_description,
    migrate,
    register,
    report_main,
    running_server,
    status_kib,
)

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_CONNECTIONS = 1000
DEFAULT_CLIENT_PROCESSES = 2
DEFAULT_RATES = (10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300, 400)
DEFAULT_STEP_SECONDS = 10.0
DEFAULT_P99_BOUND_MS = 500.0
DEFAULT_OVERLOAD_FACTOR = 2.0
DEFAULT_RECONNECT_CYCLES = 3
WS_PATH = "/api/v1/ws"
WS_ADMIN_EMAIL = "bench-ws-admin@example.com"
WS_ADMIN_NAME = "Bench WebSocket Admin"
EVENT_TYPE = "job.progress"  # a real event type; `data` carries what a job's progress carries
EVENT_KIND = "bench.websocket"
PROBE_STEP = 0  # the first event, sent to both servers to compare what they deliver
CONNECT_CONCURRENCY = 50  # handshakes in flight per client process
OPEN_TIMEOUT_SECONDS = 30.0
WARMUP_CONNECTIONS = 20  # opened and closed first, so one-time costs are not counted per socket
SETTLE_SECONDS = 5.0
DRAIN_QUIET_SECONDS = 2.0  # a step ends when everything arrived, or nothing did for this long
DRAIN_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.1
READY_TIMEOUT_SECONDS = 15.0
CLIENT_SATURATED = 0.90  # client CPU (fraction of its one CPU) from which figures are suspect
TOKEN_BUDGET_SECONDS = 25 * 60  # Keel closes sockets when the 30-minute token expires
# Latencies are counted in 10 µs buckets below 100 ms, and in 1 ms buckets above.
FINE_BUCKET_NS = 10_000
COARSE_FROM_NS = 100_000_000
COARSE_BUCKET_NS = 1_000_000
KEEL_NAME = "keel-ws"  # server logs: bench/results/<name>-server.log
BASELINE_NAME = "baseline-ws"


# --- the client processes -------------------------------------------------------------------


@dataclass
class StepStats:
    """What one client process saw of one step on one server: one slot per socket."""

    sockets: int
    counts: list[int] = field(default_factory=list)
    last_seq: list[int] = field(default_factory=list)
    latencies: Counter[int] = field(default_factory=Counter)
    max_latency_ns: int = 0
    out_of_order: int = 0
    lagged_messages: int = 0
    lagged_dropped: int = 0
    first_ns: int = 0
    last_ns: int = 0
    sample: str | None = None
    # By the second of the step the event was sent in: [deliveries, highest latency in ns].
    by_second: dict[int, list[int]] = field(default_factory=dict)
    origin_ns: int = 0  # when the step began

    def __post_init__(self) -> None:
        self.counts = [0] * self.sockets
        self.last_seq = [0] * self.sockets


class BenchSocket(asyncio.Protocol):
    """One client socket: the `websockets` library's sans-I/O core, plus a fast path for events.

    The library's asyncio client hands each message to a `recv()` coroutine, a task switch per
    message; with its frame parser on top, the clients needed 25-32 µs of CPU per message at
    10,000 messages/s, so at the servers' capacity they would have measured themselves. Here
    websockets
    (`ClientProtocol`) does the handshake, the `subscribed` message and anything unusual,
    while the hot path reads the server's complete, unfragmented text frames itself, inflating
    permessage-deflate payloads with the decompressor websockets negotiated (the same object,
    so the shared compression context stays right). A ping is answered through websockets.
    Any other frame (close, continuation, binary) hands the rest of the stream back to
    websockets for good.
    """

    def __init__(self, url: str, compression: str | None, group: SocketGroup, index: int):
        extensions = enable_client_permessage_deflate(None) if compression == "deflate" else None
        self.protocol = ClientProtocol(parse_uri(url), extensions=extensions)
        self.group = group
        self.index = index
        loop = asyncio.get_running_loop()
        self.subscribed: asyncio.Future[bytes] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.response: Response | None = None
        self.transport: asyncio.Transport | None = None
        self.fast = False  # reading frames ourselves (after `subscribed`)
        self.pending = b""  # the start of a frame not yet complete
        self.decoder: Any = None  # websockets' zlib decompressor, when deflate was negotiated

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.protocol.send_request(self.protocol.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        if self.fast:
            self.read_frames(self.pending + data if self.pending else data, now)
        else:
            self.receive(data, now)

    def receive(self, data: bytes, now: int) -> None:
        """Through websockets: the handshake, `subscribed`, and everything after a hand-back."""
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if type(event) is Frame:
                if event.opcode is Opcode.TEXT:
                    if self.subscribed.done():
                        self.group.received(self.index, bytes(event.data), now)
                    else:
                        self.subscribed.set_result(bytes(event.data))
                        self.take_over()
            elif isinstance(event, Response):
                self.response = event
                if protocol.handshake_exc is not None and not self.subscribed.done():
                    self.subscribed.set_exception(protocol.handshake_exc)
        self.flush()

    def take_over(self) -> None:
        """Read frames ourselves from here on, if the negotiated extensions allow it."""
        deflate = [e for e in self.protocol.extensions if isinstance(e, PerMessageDeflate)]
        if len(self.protocol.extensions) != len(deflate):
            return  # an extension we do not know: leave it all to websockets
        if deflate:
            if deflate[0].remote_no_context_takeover:
                return  # a new decompressor per message: leave it to websockets
            self.decoder = deflate[0].decoder
        self.fast = True
        self.pending = bytes(self.protocol.reader.buffer)
        self.protocol.reader.buffer.clear()

    def read_frames(self, buffer: bytes, now: int) -> None:
        """Complete frames from the server (never masked); keep an incomplete one for later."""
        size = len(buffer)
        position = 0
        while size - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if size - position < 4:
                    break
                length, head = int.from_bytes(buffer[position + 2 : position + 4]), 4
            elif length == 127:
                if size - position < 10:
                    break
                length, head = int.from_bytes(buffer[position + 2 : position + 10]), 10
            end = position + head + length
            if end > size:
                break
            opcode = first & 0x0F
            if opcode == 0x1 and first & 0x80 and not second & 0x80:  # a whole text message
                payload = buffer[position + head : end]
                if first & 0x40:  # RSV1: compressed
                    payload = self.decoder.decompress(payload + b"\x00\x00\xff\xff")
                self.group.received(self.index, payload, now)
            elif opcode == 0x9:  # ping
                self.protocol.send_pong(buffer[position + head : end])
                self.flush()
            else:
                self.fast = False
                self.pending = b""
                self.receive(buffer[position:], now)
                return
            position = end
        self.pending = buffer[position:]

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self.flush()
        return None

    def flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                self.transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError(f"closed before subscribing: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)
        if not self.group.closing:
            self.group.unexpected_closes.append(
                f"socket {self.index}: code {self.protocol.close_code} "
                f"{self.protocol.close_reason!r}"
            )

    @property
    def open(self) -> bool:
        return not self.closed.done()

    async def close(self) -> None:
        """The closing handshake; the server then closes the TCP connection."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close()
            self.flush()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), 5.0)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()


@dataclass
class SocketGroup:
    """One server's sockets in one client process, and what they received, by step."""

    sockets: list[BenchSocket] = field(default_factory=list)
    steps: dict[int, StepStats] = field(default_factory=dict)
    current: int = PROBE_STEP
    other_messages: Counter[str] = field(default_factory=Counter)
    unexpected_closes: list[str] = field(default_factory=list)
    closing: bool = False

    def stats(self, step: int) -> StepStats:
        found = self.steps.get(step)
        if found is None:
            found = self.steps[step] = StepStats(len(self.sockets))
        return found

    def received(self, index: int, raw: bytes, now: int) -> None:
        """Count one message: the hot path (every delivery), so it stays plain."""
        message = json.loads(raw.decode())
        kind = message.get("type")
        if kind == EVENT_TYPE:
            data = message["data"]
            step = data["step"]
            stats = self.steps.get(step) or self.stats(step)
            latency = now - data["sent_ns"]
            stats.counts[index] += 1
            seq = data["done"]
            if seq != stats.last_seq[index] + 1:
                stats.out_of_order += 1
            stats.last_seq[index] = seq
            if latency < COARSE_FROM_NS:
                stats.latencies[latency // FINE_BUCKET_NS] += 1
            else:
                bucket = latency // COARSE_BUCKET_NS * (COARSE_BUCKET_NS // FINE_BUCKET_NS)
                stats.latencies[bucket] += 1
            if latency > stats.max_latency_ns:
                stats.max_latency_ns = latency
            offset = (data["sent_ns"] - stats.origin_ns) // 1_000_000_000
            second = stats.by_second.get(offset)
            if second is None:
                stats.by_second[offset] = [1, latency]
            else:
                second[0] += 1
                if latency > second[1]:
                    second[1] = latency
            if not stats.first_ns:
                stats.first_ns = now
            stats.last_ns = now
            if index == 0 and stats.sample is None:
                stats.sample = raw.decode()
        elif kind == "lagged":
            stats = self.stats(self.current)
            stats.lagged_messages += 1
            stats.lagged_dropped += int(message.get("dropped", 0))
        else:
            self.other_messages[str(kind)] += 1


class ClientWorker:
    """Holds sockets to the servers and counts what arrives; driven over a pipe by the parent.

    Each command is `(name, arguments)` and is answered `("ok", value)` or `("error", text)`.
    """

    def __init__(self, pipe: Connection) -> None:
        self.pipe = pipe
        self.groups: dict[str, SocketGroup] = {}

    async def serve(self) -> None:
        while True:
            command, arguments = await asyncio.to_thread(self.pipe.recv)
            if command == "exit":
                return
            try:
                value = await getattr(self, f"do_{command}")(*arguments)
            except Exception:
                self.pipe.send(("error", traceback.format_exc()))
            else:
                self.pipe.send(("ok", value))

    async def do_connect(
        self, name: str, url: str, count: int, compression: str | None
    ) -> dict[str, Any]:
        """Open `count` sockets; each must be answered `subscribed` with scope `all`."""
        group = self.groups.setdefault(name, SocketGroup())
        limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
        loop = asyncio.get_running_loop()
        parsed = parse_uri(url)

        async def open_one(socket: BenchSocket) -> None:
            async with limit:
                await loop.create_connection(lambda: socket, parsed.host, parsed.port)
                first = await asyncio.wait_for(socket.subscribed, OPEN_TIMEOUT_SECONDS)
            if json.loads(first) != {"type": "subscribed", "scope": "all"}:
                raise RuntimeError(f"the first message was {first!r}")

        new = []
        for _ in range(count):
            new.append(BenchSocket(url, compression, group, len(group.sockets)))
            group.sockets.append(new[-1])
        started = time.perf_counter()
        opened = await asyncio.gather(*(open_one(s) for s in new), return_exceptions=True)
        seconds = time.perf_counter() - started
        errors = [repr(result) for result in opened if isinstance(result, BaseException)]
        gc.freeze()  # long-lived from here on: keep collections of them out of the latencies
        response = group.sockets[0].response if group.sockets else None
        return {
            "opened": count - len(errors),
            "errors": errors[:5],
            "error_count": len(errors),
            "seconds": seconds,
            "extensions": response.headers.get("Sec-WebSocket-Extensions") if response else None,
        }

    async def do_begin(self, name: str, step: int, origin_ns: int) -> None:
        group = self.groups[name]
        group.current = step
        group.stats(step).origin_ns = origin_ns

    async def do_progress(self, name: str, step: int) -> tuple[int, int]:
        """(events received in `step` over all sockets, time of the last one)."""
        stats = self.groups[name].stats(step)
        return sum(stats.counts), stats.last_ns

    async def do_report(self, name: str, step: int, expected: int) -> dict[str, Any]:
        group = self.groups[name]
        stats = group.stats(step)
        report = {
            "sockets": stats.sockets,
            "received": sum(stats.counts),
            "complete_sockets": sum(1 for count in stats.counts if count == expected),
            "fewest": min(stats.counts, default=0),
            "most": max(stats.counts, default=0),
            "latencies": dict(stats.latencies),
            "max_latency_ns": stats.max_latency_ns,
            "out_of_order": stats.out_of_order,
            "lagged_messages": stats.lagged_messages,
            "lagged_dropped": stats.lagged_dropped,
            "first_ns": stats.first_ns,
            "last_ns": stats.last_ns,
            "sample": stats.sample,
            "by_second": stats.by_second,
            "other_messages": dict(group.other_messages),
            "unexpected_closes": list(group.unexpected_closes),
            "open_sockets": sum(1 for socket in group.sockets if socket.open),
        }
        del group.steps[step]
        return report

    async def do_cpu(self) -> float:
        return time.process_time()

    async def do_close(self, name: str) -> dict[str, Any]:
        group = self.groups.pop(name)
        group.closing = True
        await asyncio.gather(*(s.close() for s in group.sockets), return_exceptions=True)
        return {"unexpected_closes": group.unexpected_closes}


def client_process(pipe: Connection, cpu: int | None) -> None:
    """A client process's entry point (spawned): pin, raise the fd limit, serve the pipe."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    raise_fd_limit()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us in order
    # uvloop, as the servers use it: the clients' cost is mostly one read per socket per event
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(ClientWorker(pipe).serve())


def raise_fd_limit() -> int:
    """Every socket is a file descriptor: take the hard limit as the soft one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Clients:
    """The parent's handle on the client processes: each command goes to all, then all answer."""

    def __init__(self, processes: int, cpu: int | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[Any] = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=client_process, args=(child, cpu), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def call(self, command: str, arguments: Sequence[Sequence[Any]]) -> list[Any]:
        """Send `command` with each process's own arguments, then collect every answer."""
        for pipe, own in zip(self.pipes, arguments, strict=True):
            pipe.send((command, tuple(own)))
        answers = []
        for pipe in self.pipes:
            status, value = pipe.recv()
            if status != "ok":
                raise BenchError(f"a client process failed on {command!r}:\n{value}")
            answers.append(value)
        return answers

    def call_all(self, command: str, *arguments: Any) -> list[Any]:
        return self.call(command, [arguments] * len(self.pipes))

    def split(self, total: int) -> list[int]:
        """`total` sockets spread as evenly as possible over the processes."""
        share, extra = divmod(total, len(self.pipes))
        return [share + (1 if number < extra else 0) for number in range(len(self.pipes))]

    def connect(self, name: str, url: str, total: int, compression: str | None) -> dict[str, Any]:
        answers = self.call(
            "connect", [(name, url, count, compression) for count in self.split(total)]
        )
        opened = sum(answer["opened"] for answer in answers)
        if opened != total:
            errors = [error for answer in answers for error in answer["errors"]]
            raise BenchError(f"{name}: opened {opened} of {total} sockets; errors: {errors}")
        return {
            "opened": opened,
            "seconds": max(answer["seconds"] for answer in answers),
            "extensions": answers[0]["extensions"],
        }

    def cpu_seconds(self) -> float:
        return sum(self.call_all("cpu"))

    def stop(self) -> None:
        for pipe in self.pipes:
            with suppress(OSError):
                pipe.send(("exit", ()))
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()


# --- publishing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    count: int
    first_ns: int
    last_ns: int
    receivers: tuple[int, int]  # fewest and most subscribers Redis reported per publish


def bench_event(step: int, seq: int, total: int, job_id: str, user_id: uuid.UUID) -> str:
    """One event exactly as Keel's producers put it on the channel, stamped with its send time."""
    data = {
        "kind": EVENT_KIND,
        "done": seq,
        "total": total,
        "step": step,
        "sent_ns": time.time_ns(),
    }
    return Event(type=EVENT_TYPE, id=job_id, user_id=user_id, data=data).encode()


async def publish(
    redis_url: str, channels: Sequence[str], rate: float, seconds: float, step: int
) -> Published:
    """Publish `rate` events/s for `seconds` on a fixed schedule (no drift, no bursts).

    The same encoded event goes to each channel in `channels` (the probe goes to both servers,
    so they can be compared byte for byte; measured steps go to one).
    """
    total = max(1, round(rate * seconds))
    job_id = str(uuid.uuid4())
    user_id = uuid.uuid4()  # the events' owner has no socket: only the admin's scope=all gets them
    redis = Redis.from_url(redis_url)
    receivers: list[int] = []
    first_ns = 0
    try:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seq in range(1, total + 1):
            delay = start + (seq - 1) / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            text = bench_event(step, seq, total, job_id, user_id)
            if not first_ns:
                first_ns = time.time_ns()
            for channel in channels:
                receivers.append(await redis.publish(channel, text))
        last_ns = time.time_ns()
    finally:
        await redis.aclose()
    return Published(total, first_ns, last_ns, (min(receivers), max(receivers)))


# --- measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A server under test as this run drives it."""

    server: Server
    name: str
    channel: str
    url: str

    @property
    def pid(self) -> int:
        if self.server.pid is None:
            raise BenchError(f"{self.name}: the server's process id is unknown")
        return self.server.pid


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time of `pid`, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_ready(server: Server) -> None:
    """Wait for /ready: Keel reports its Redis subscription as `events` there (so does the
    baseline), and an event published before it is live would simply be lost."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(f"{server.base_url}/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    raise BenchError(f"{server.name} did not report ready within {READY_TIMEOUT_SECONDS:.0f}s")


def idle_memory(
    clients: Clients, target: Target, connections: int, compression: str | None
) -> dict[str, Any]:
    """VmRSS before and after `connections` idle authenticated sockets."""
    clients.connect(f"{target.name}-warmup", target.url, WARMUP_CONNECTIONS, compression)
    clients.call_all("close", f"{target.name}-warmup")
    time.sleep(2.0)
    before = status_kib(target.pid, "VmRSS")
    opened = clients.connect(target.name, target.url, connections, compression)
    samples = []
    for _ in range(int(SETTLE_SECONDS)):
        time.sleep(1.0)
        samples.append(status_kib(target.pid, "VmRSS"))
    after = samples[-1]
    per_connection = (after - before) / connections
    print(
        f"  {target.name}: {connections} sockets open in {opened['seconds']:.1f}s "
        f"(extensions: {opened['extensions'] or 'none'}); RSS {before / 1024:.1f} -> "
        f"{after / 1024:.1f} MiB: {per_connection:.1f} KiB per idle connection",
        flush=True,
    )
    return {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "rss_settle_samples_kib": samples,
        "per_connection_kib": round(per_connection, 2),
        "connect_seconds": round(opened["seconds"], 2),
        "negotiated_extensions": opened["extensions"],
    }


def percentile(histogram: Counter[int], fraction: float) -> float:
    """The `fraction` quantile of a latency histogram, in ms (each bucket by its upper edge)."""
    total = sum(histogram.values())
    if not total:
        return float("nan")
    rank = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            width = FINE_BUCKET_NS if bucket * FINE_BUCKET_NS < COARSE_FROM_NS else COARSE_BUCKET_NS
            return (bucket * FINE_BUCKET_NS + width) / 1e6
    return float("nan")


def drain(clients: Clients, target: Target, step: int, expected: int) -> None:
    """Wait until every socket has every event, or nothing has arrived for a while."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    last_total, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        total = sum(received for received, _ in clients.call_all("progress", target.name, step))
        if total >= expected:
            return
        if total != last_total:
            last_total, last_change = total, time.monotonic()
        elif time.monotonic() - last_change > DRAIN_QUIET_SECONDS:
            return
        time.sleep(POLL_SECONDS)


def run_step(
    clients: Clients,
    target: Target,
    redis_url: str,
    rate: float,
    step: int,
    arguments: argparse.Namespace,
    *,
    overload: bool = False,
) -> dict[str, Any]:
    """Publish `rate` events/s to one server for `--step-seconds`, then collect what arrived.

    An `overload` step is run past the server's capacity on purpose: it must tell the clients
    what they lost (`lagged`) instead of losing events silently, and is never "sustained".
    """
    connections = arguments.connections
    clients.call_all("begin", target.name, step, time.time_ns())
    server_cpu, client_cpu, wall = (
        process_cpu_seconds(target.pid),
        clients.cpu_seconds(),
        time.monotonic(),
    )
    published = asyncio.run(
        publish(redis_url, [target.channel], rate, arguments.step_seconds, step)
    )
    drain(clients, target, step, published.count * connections)
    wall = time.monotonic() - wall
    server_cpu = (process_cpu_seconds(target.pid) - server_cpu) / wall
    client_cpu = (clients.cpu_seconds() - client_cpu) / wall
    reports = clients.call_all("report", target.name, step, published.count)
    latencies: Counter[int] = Counter()
    for report in reports:
        latencies.update({int(k): v for k, v in report["latencies"].items()})
    received = sum(r["received"] for r in reports)
    expected = published.count * connections
    last_ns = max(r["last_ns"] for r in reports)
    span = (last_ns - published.first_ns) / 1e9 if last_ns else float("nan")
    by_second: dict[int, list[int]] = {}
    for report in reports:
        for second, (count, highest) in report["by_second"].items():
            merged = by_second.setdefault(int(second), [0, 0])
            merged[0] += count
            merged[1] = max(merged[1], highest)
    result = {
        "server": target.name,
        "step": step,
        "overload": overload,
        "offered_events_per_second": rate,
        "published": published.count,
        "publish_seconds": round((published.last_ns - published.first_ns) / 1e9, 3),
        "redis_receivers": list(published.receivers),
        "expected_deliveries": expected,
        "delivered": received,
        "missing": expected - received,
        "complete_sockets": sum(r["complete_sockets"] for r in reports),
        "fewest_per_socket": min(r["fewest"] for r in reports),
        "most_per_socket": max(r["most"] for r in reports),
        "lagged_messages": sum(r["lagged_messages"] for r in reports),
        "lagged_dropped": sum(r["lagged_dropped"] for r in reports),
        # Deliveries missing that no `lagged` notice accounts for: events lost silently.
        "missing_without_lagged": expected - received - sum(r["lagged_dropped"] for r in reports),
        "out_of_order": sum(r["out_of_order"] for r in reports),
        "deliveries_per_second": round(received / span, 1) if span > 0 else None,
        "delivery_span_seconds": round(span, 3),
        "drain_seconds": round((last_ns - published.last_ns) / 1e9, 3) if last_ns else None,
        "latency_ms": {
            "p50": round(percentile(latencies, 0.50), 2),
            "p90": round(percentile(latencies, 0.90), 2),
            "p99": round(percentile(latencies, 0.99), 2),
            "p999": round(percentile(latencies, 0.999), 2),
            "max": round(max(r["max_latency_ns"] for r in reports) / 1e6, 2),
        },
        # For the events sent in each second of the step: deliveries and the worst latency.
        "by_second_sent": [
            {"second": second, "deliveries": count, "max_ms": round(worst / 1e6, 1)}
            for second, (count, worst) in sorted(by_second.items())
        ],
        "server_cpu": round(server_cpu, 3),
        "client_cpu": round(client_cpu, 3),
        "client_saturated": client_cpu >= CLIENT_SATURATED,
        "server_rss_kib_after": status_kib(target.pid, "VmRSS"),
        "open_sockets": sum(r["open_sockets"] for r in reports),
        "unexpected_closes": [c for r in reports for c in r["unexpected_closes"]][:10],
        "other_messages": _merge_counts(r["other_messages"] for r in reports),
        "sample": reports[0]["sample"],
    }
    problems = []
    if result["missing"]:
        problems.append(f"{result['missing']} deliveries missing")
    if result["missing_without_lagged"]:
        problems.append(f"{result['missing_without_lagged']} of them without a lagged notice")
    if result["lagged_messages"]:
        problems.append(f"{result['lagged_messages']} lagged notices")
    if result["out_of_order"]:
        problems.append(f"{result['out_of_order']} out of order")
    if not result["latency_ms"]["p99"] <= arguments.p99_bound_ms:
        problems.append(f"p99 {result['latency_ms']['p99']} ms > {arguments.p99_bound_ms:g} ms")
    if result["open_sockets"] != connections:
        problems.append(f"{connections - result['open_sockets']} sockets closed")
    if published.receivers != (1, 1):
        problems.append(f"Redis reported {published.receivers} subscribers, not 1")
    result["sustained"] = not problems and not overload
    result["problems"] = problems
    return result


def _merge_counts(counts: Iterator[dict[str, int]]) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for one in counts:
        merged.update(one)
    return dict(merged)


def probe(clients: Clients, targets: Sequence[Target], redis_url: str, connections: int) -> str:
    """Publish one event to both channels and check that both servers deliver the same text."""
    for target in targets:
        clients.call_all("begin", target.name, PROBE_STEP, time.time_ns())
    published = asyncio.run(publish(redis_url, [t.channel for t in targets], 1.0, 1.0, PROBE_STEP))
    samples = {}
    for target in targets:
        drain(clients, target, PROBE_STEP, published.count * connections)
        reports = clients.call_all("report", target.name, PROBE_STEP, published.count)
        received = sum(r["received"] for r in reports)
        if received != published.count * connections:
            raise BenchError(f"{target.name}: the probe event reached {received} of {connections}")
        samples[target.name] = reports[0]["sample"]
    texts = set(samples.values())
    if len(texts) != 1:
        raise BenchError(f"the servers deliver different messages for one event: {samples}")
    return texts.pop()


# --- servers --------------------------------------------------------------------------------


def ws_keel_environment(
    shared: Shared, redis_url: str, channel: str, server_compression: bool
) -> dict[str, str]:
    """run.py's production settings with Redis (rate limits, cache and events on it)."""
    return {
        **keel_environment(shared),
        "KEEL_REDIS_URL": redis_url,
        "KEEL_EVENTS_CHANNEL": channel,
        "KEEL_WS_COMPRESSION": "true" if server_compression else "false",
        # One login per run, but reruns within a minute would meet the login limits, which
        # live in Redis and so outlast a server.
        "KEEL_RATE_LIMIT_LOGIN_IP": UNREACHABLE_RATE_LIMIT,
        "KEEL_RATE_LIMIT_LOGIN_ACCOUNT": UNREACHABLE_RATE_LIMIT,
        "KEEL_RATE_LIMIT_REGISTER_IP": UNREACHABLE_RATE_LIMIT,
    }


def ws_baseline_environment(shared: Shared, redis_url: str, channel: str) -> dict[str, str]:
    return {
        **clean_environment(),
        "BASELINE_REDIS_URL": redis_url,
        "BASELINE_EVENTS_CHANNEL": channel,
        "BASELINE_JWT_SECRET": shared.jwt_secret,
        "BASELINE_JWT_ISSUER": JWT_ISSUER,
        "BASELINE_JWT_AUDIENCE": JWT_AUDIENCE,
        "BASELINE_WS_QUEUE_SIZE": str(Settings.model_fields["ws_queue_size"].default),
    }


def ws_baseline_command(port: int, server_compression: bool) -> list[str]:
    """The bare app under the same uvicorn, WebSocket implementation, worker count and
    permessage-deflate setting as Keel."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "ws_baseline_app:app",
        "--app-dir",
        str(Path(__file__).resolve().parent),
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        "1",
        "--ws",
        "websockets-sansio",  # what Keel's protocol class (core/serving.py) is built on
        "--ws-per-message-deflate",
        "true" if server_compression else "false",
        "--no-access-log",
        "--log-level",
        "warning",
    ]


def ws_url(server: Server, token: str) -> str:
    return f"ws://{server.base_url.removeprefix('http://')}{WS_PATH}?token={token}&scope=all"


def admin_token(keel: Server) -> str:
    """Register (once), promote and log in the admin whose sockets all clients use."""
    register(keel, WS_ADMIN_EMAIL, WS_ADMIN_NAME)
    asyncio.run(_promote_to_admin(WS_ADMIN_EMAIL))
    token = login(keel, WS_ADMIN_EMAIL)
    with keel_client(keel, bearer(token)) as client:
        me = client.get("/api/v1/users/me")
    if me.status_code != 200 or "admin" not in me.json().get("roles", []):
        raise BenchError(f"the bench admin is not an admin: {me.status_code} {me.text[:300]}")
    return token


def log_findings(name: str) -> dict[str, Any]:
    """Warnings, errors and tracebacks a server wrote during the run (the log level is WARNING),
    and, with --gc-probe, its full garbage collections."""
    path = RESULTS_DIR / f"{name}-server.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    probes = [line.split() for line in text.splitlines() if line.startswith(GC_PROBE_MARK)]
    lines = [line for line in text.splitlines() if line.strip() and GC_PROBE_MARK not in line]
    findings: dict[str, Any] = {
        "log": str(path.relative_to(REPO_ROOT)),
        "lines": len(lines),
        "tail": "\n".join(lines[-20:]),
    }
    if probes:
        full = sorted(float(fields[2]) for fields in probes if fields[1] == "2")
        findings["full_collections"] = {
            "count": len(full),
            "median_ms": full[len(full) // 2] if full else None,
            "max_ms": full[-1] if full else None,
            "all_ms": full,
        }
    return findings


GC_PROBE_MARK = "GCPROBE"
# Loaded by the servers' interpreters at start-up with --gc-probe (through PYTHONPATH): it
# writes one line to stderr per full (generation 2) collection, with its duration.
GC_PROBE_SITECUSTOMIZE = f"""
import gc, sys, time

_started = [0.0]


def _probe(phase, info):
    if phase == "start":
        _started[0] = time.perf_counter()
    elif info["generation"] == 2:
        took = (time.perf_counter() - _started[0]) * 1000
        line = f"{GC_PROBE_MARK} 2 {{took:.1f}} {{info['collected']}} {{time.time():.3f}}\\n"
        sys.stderr.write(line)
        sys.stderr.flush()


gc.callbacks.append(_probe)
"""


# --- running --------------------------------------------------------------------------------


@contextmanager
def client_processes(count: int) -> Iterator[Clients]:
    cpu = int(LOAD_CPU) if (os.cpu_count() or 1) >= 2 else None
    clients = Clients(count, cpu)
    try:
        yield clients
    finally:
        clients.stop()


def pin_self() -> str | None:
    """The publisher shares CPU 1 with the clients, off the servers' CPU."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    return LOAD_CPU


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    client_cpu = pin_self()
    fd_limit = raise_fd_limit()  # the servers inherit it
    if fd_limit < 2 * arguments.connections + 200:
        raise BenchError(
            f"the open-file limit is {fd_limit}; {arguments.connections} sockets "
            "to each server need more"
        )
    database_url = bench_database_url()
    ensure_database(database_url)
    shared = Shared.for_run(database_url)
    prefix = f"keel-bench:{secrets.token_hex(4)}"  # pub/sub channels ignore the DB number
    keel_channel, baseline_channel = f"{prefix}:keel", f"{prefix}:baseline"
    redis_url = arguments.redis_url
    server_compression = arguments.server_compression == "on"
    keel_env = ws_keel_environment(shared, redis_url, keel_channel, server_compression)
    migrate(keel_env)
    baseline_env = ws_baseline_environment(shared, redis_url, baseline_channel)
    compression = None if arguments.compression == "none" else arguments.compression
    keel_port, baseline_port = free_ports(2)
    with ExitStack() as stack:
        if arguments.gc_probe:
            probe_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="keel-gc-")))
            (probe_dir / "sitecustomize.py").write_text(GC_PROBE_SITECUSTOMIZE)
            for environment in (keel_env, baseline_env):
                environment["PYTHONPATH"] = str(probe_dir)
        keel = stack.enter_context(
            running_server(KEEL_NAME, keel_command(keel_port), keel_env, keel_port)
        )
        baseline = stack.enter_context(
            running_server(
                BASELINE_NAME,
                ws_baseline_command(baseline_port, server_compression),
                baseline_env,
                baseline_port,
            )
        )
        wait_ready(keel)
        wait_ready(baseline)
        token = admin_token(keel)
        logged_in = time.monotonic()
        targets = [
            Target(keel, "keel", keel_channel, ws_url(keel, token)),
            Target(baseline, "baseline", baseline_channel, ws_url(baseline, token)),
        ]
        clients = stack.enter_context(client_processes(arguments.clients))
        rss_started = {t.name: status_kib(t.pid, "VmRSS") for t in targets}
        print(f"idle memory, {arguments.connections} sockets per server:", flush=True)
        memory = {
            t.name: idle_memory(clients, t, arguments.connections, compression) for t in targets
        }
        sample = probe(clients, targets, redis_url, arguments.connections)
        print(f"both servers deliver the same text, e.g. {sample}", flush=True)
        steps: list[dict[str, Any]] = []
        climbing = {t.name for t in targets}
        step = PROBE_STEP
        for rate in arguments.rates:
            for target in targets:
                if target.name not in climbing:
                    continue
                if time.monotonic() - logged_in > TOKEN_BUDGET_SECONDS:
                    raise BenchError("the run outlasted the access token; lower --rates")
                step += 1
                result = run_step(clients, target, redis_url, rate, step, arguments)
                steps.append(result)
                print(format_step(result), flush=True)
                if not result["sustained"]:
                    climbing.discard(target.name)
                    if arguments.overload_factor > 1:
                        step += 1
                        result = run_step(
                            clients,
                            target,
                            redis_url,
                            rate * arguments.overload_factor,
                            step,
                            arguments,
                            overload=True,
                        )
                        steps.append(result)
                        print(format_step(result), flush=True)
            if not climbing:
                break
        rss_loaded = {t.name: status_kib(t.pid, "VmRSS") for t in targets}
        closed = {t.name: clients.call_all("close", t.name) for t in targets}
        time.sleep(2.0)
        rss_closed = {t.name: status_kib(t.pid, "VmRSS") for t in targets}
        # The same number of sockets once more: what the first ones left behind should be
        # reused, so the server should hardly grow (a leak per connection would show here).
        rss_reconnected: dict[str, list[int]] = {t.name: [] for t in targets}
        for cycle in range(1, arguments.reconnect_cycles + 1):
            for target in targets:
                clients.connect(target.name, target.url, arguments.connections, compression)
                time.sleep(SETTLE_SECONDS)
                rss_reconnected[target.name].append(status_kib(target.pid, "VmRSS"))
                closed[f"{target.name}-cycle-{cycle}"] = clients.call_all("close", target.name)
        heartbeats = {
            t.name: next(
                (s["other_messages"] for s in reversed(steps) if s["server"] == t.name), {}
            )
            for t in targets
        }
    findings = {name: log_findings(name) for name in (KEEL_NAME, BASELINE_NAME)}
    return summarise(
        arguments,
        steps=steps,
        memory=memory,
        rss={
            "started": rss_started,
            "after_steps": rss_loaded,
            "after_close": rss_closed,
            "after_reconnect": rss_reconnected,
        },
        closes={name: [c["unexpected_closes"] for c in value] for name, value in closed.items()},
        sample=sample,
        client_cpu=client_cpu,
        findings=findings,
        other=heartbeats,
    )


def summarise(arguments: argparse.Namespace, **parts: Any) -> dict[str, Any]:
    steps = parts["steps"]
    per_server: dict[str, Any] = {}
    for name in ("keel", "baseline"):
        own = [s for s in steps if s["server"] == name]
        sustained = [s for s in own if s["sustained"]]
        best = max(sustained, key=lambda s: s["offered_events_per_second"], default=None)
        peak = max(own, key=lambda s: s["deliveries_per_second"] or 0, default=None)
        per_server[name] = {
            "highest_sustained_events_per_second": best and best["offered_events_per_second"],
            "highest_sustained_deliveries_per_second": best and best["deliveries_per_second"],
            "latency_ms_at_highest_sustained": best and best["latency_ms"],
            "peak_deliveries_per_second": peak and peak["deliveries_per_second"],
            "peak_at_offered_events_per_second": peak and peak["offered_events_per_second"],
            "client_saturated_in_any_step": any(s["client_saturated"] for s in own),
            "overload_check": [
                {
                    key: s[key]
                    for key in (
                        "offered_events_per_second",
                        "deliveries_per_second",
                        "missing",
                        "lagged_messages",
                        "lagged_dropped",
                        "missing_without_lagged",
                        "out_of_order",
                    )
                }
                for s in own
                if s["overload"]
            ],
            "idle_memory": parts["memory"][name],
            # Once every socket has carried events (compression buffers touched, mailboxes
            # used): the same difference, taken after the last step.
            "per_connection_kib_after_steps": round(
                (parts["rss"]["after_steps"][name] - parts["memory"][name]["rss_before_kib"])
                / arguments.connections,
                2,
            ),
            "rss_kib": {key: value[name] for key, value in parts["rss"].items()},
            # Each cycle opens all the sockets again (then closes them): growth per cycle.
            "growth_on_reconnect_kib": [
                after - before
                for before, after in zip(
                    [parts["rss"]["after_steps"][name], *parts["rss"]["after_reconnect"][name]],
                    parts["rss"]["after_reconnect"][name],
                    strict=False,
                )
            ],
        }
    keel, baseline = per_server["keel"], per_server["baseline"]

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a and b else None

    common = {
        s["offered_events_per_second"] for s in steps if s["sustained"] and s["server"] == "keel"
    } & {
        s["offered_events_per_second"]
        for s in steps
        if s["sustained"] and s["server"] == "baseline"
    }
    at_common = None
    if common:
        rate = max(common)
        pair = {
            s["server"]: s
            for s in steps
            if s["offered_events_per_second"] == rate and not s["overload"]
        }
        at_common = {
            "offered_events_per_second": rate,
            "keel_p99_ms": pair["keel"]["latency_ms"]["p99"],
            "baseline_p99_ms": pair["baseline"]["latency_ms"]["p99"],
            "p99_ratio_keel_to_baseline": ratio(
                pair["keel"]["latency_ms"]["p99"], pair["baseline"]["latency_ms"]["p99"]
            ),
        }
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            [".venv/bin/python", "bench/features/realtime/websocket.py", *sys.argv[1:]]
        ),
        "settings": {
            "connections_per_server": arguments.connections,
            "client_processes": arguments.clients,
            "rates": list(arguments.rates),
            "step_seconds": arguments.step_seconds,
            "p99_bound_ms": arguments.p99_bound_ms,
            "compression_offered": arguments.compression,
            "server_compression": arguments.server_compression,
            "redis_url": arguments.redis_url,
            "keel_ws_queue_size": Settings.model_fields["ws_queue_size"].default,
            "event_wire_format": "keel.core.events.Event.encode()",
            "client_cpu": parts["client_cpu"],
        },
        "delivered_message_example": parts["sample"],
        "servers": per_server,
        "ratios_keel_to_baseline": {
            "highest_sustained_events_per_second": ratio(
                keel["highest_sustained_events_per_second"],
                baseline["highest_sustained_events_per_second"],
            ),
            "peak_deliveries_per_second": ratio(
                keel["peak_deliveries_per_second"], baseline["peak_deliveries_per_second"]
            ),
            "memory_per_idle_connection": ratio(
                keel["idle_memory"]["per_connection_kib"],
                baseline["idle_memory"]["per_connection_kib"],
            ),
            "p99_at_highest_common_sustained_rate": at_common,
        },
        "steps": [{k: v for k, v in s.items() if k != "sample"} for s in steps],
        "unexpected_closes_at_end": parts["closes"],
        "other_messages_seen": parts["other"],
        "server_logs": parts["findings"],
        "machine": machine_description(arguments.cpu_busy),
    }


def format_step(s: dict[str, Any]) -> str:
    latency = s["latency_ms"]
    if s["overload"]:
        verdict = "overload check: " + (
            "every loss announced with lagged"
            if not s["missing_without_lagged"]
            else f"{s['missing_without_lagged']} deliveries lost WITHOUT a lagged notice"
        )
    else:
        verdict = "ok" if s["sustained"] else "NOT SUSTAINED: " + "; ".join(s["problems"])
    saturated = " (client CPU saturated)" if s["client_saturated"] else ""
    return (
        f"  {s['server']:<8} {s['offered_events_per_second']:>6g} ev/s -> "
        f"{s['deliveries_per_second'] or 0:>10,.0f} deliveries/s, p50 {latency['p50']:>8.2f} "
        f"p99 {latency['p99']:>8.2f} max {latency['max']:>8.2f} ms, missing {s['missing']}, "
        f"lagged {s['lagged_dropped']}, server CPU {s['server_cpu']:.0%}, client CPU "
        f"{s['client_cpu']:.0%}{saturated}: {verdict}"
    )


def format_summary(document: dict[str, Any]) -> str:
    settings = document["settings"]
    lines = [
        f"clients offer compression: {settings['compression_offered']}; "
        f"servers accept it: {settings['server_compression']}",
        f"{'server':<9} {'sustained ev/s':>14} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'peak deliveries/s':>18} {'KiB/idle conn':>14} {'KiB/conn after':>15}",
    ]
    for name, s in document["servers"].items():
        latency = s["latency_ms_at_highest_sustained"] or {}
        lines.append(
            f"{name:<9} {s['highest_sustained_events_per_second'] or 0:>14g} "
            f"{s['highest_sustained_deliveries_per_second'] or 0:>13,.0f} "
            f"{latency.get('p50', float('nan')):>8.2f} {latency.get('p99', float('nan')):>8.2f} "
            f"{s['peak_deliveries_per_second'] or 0:>18,.0f} "
            f"{s['idle_memory']['per_connection_kib']:>14.1f} "
            f"{s['per_connection_kib_after_steps']:>15.1f}"
        )
        rss = s["rss_kib"]
        lines.append(
            f"{name:<9} RSS MiB: {s['idle_memory']['rss_before_kib'] / 1024:.1f} before, "
            f"{s['idle_memory']['rss_after_kib'] / 1024:.1f} idle, "
            f"{rss['after_steps'] / 1024:.1f} after the steps, "
            f"{rss['after_close'] / 1024:.1f} closed; with all sockets open again: "
            + ", ".join(
                f"{kib / 1024:.1f} ({growth / 1024:+.1f})"
                for kib, growth in zip(
                    rss["after_reconnect"], s["growth_on_reconnect_kib"], strict=True
                )
            )
        )
        for check in s["overload_check"]:
            lines.append(
                f"{name:<9} overload at {check['offered_events_per_second']:g} ev/s: "
                f"{check['deliveries_per_second'] or 0:,.0f} deliveries/s, "
                f"{check['lagged_dropped']:,} dropped with lagged notices, "
                f"{check['missing_without_lagged']:,} lost without one"
            )
    ratios = document["ratios_keel_to_baseline"]
    lines.append(
        "keel/baseline: sustained events/s "
        f"{ratios['highest_sustained_events_per_second']}, peak deliveries/s "
        f"{ratios['peak_deliveries_per_second']}, memory per idle connection "
        f"{ratios['memory_per_idle_connection']}"
    )
    if ratios["p99_at_highest_common_sustained_rate"]:
        common = ratios["p99_at_highest_common_sustained_rate"]
        lines.append(
            f"p99 at {common['offered_events_per_second']:g} ev/s (both sustained): keel "
            f"{common['keel_p99_ms']} ms, baseline {common['baseline_p99_ms']} ms"
        )
    for name, closes in document["unexpected_closes_at_end"].items():
        count = sum(len(c) for c in closes)
        if count:
            lines.append(f"{name}: {count} sockets closed by the server before the end")
    for name, findings in document["server_logs"].items():
        if findings["lines"]:
            lines.append(f"{name}: {findings['lines']} lines in {findings['log']}, see the JSON")
        collections = findings.get("full_collections")
        if collections:
            lines.append(
                f"{name}: {collections['count']} full garbage collections, median "
                f"{collections['median_ms']} ms, longest {collections['max_ms']} ms"
            )
    return "\n".join(lines)


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Fan events out to many WebSocket clients of Keel and of a bare app."
    )
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument(
        "--clients", type=int, default=DEFAULT_CLIENT_PROCESSES, help="client processes"
    )
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=list(DEFAULT_RATES),
        help="publish rates to step through, events/s (comma-separated)",
    )
    parser.add_argument("--step-seconds", type=float, default=DEFAULT_STEP_SECONDS)
    parser.add_argument("--p99-bound-ms", type=float, default=DEFAULT_P99_BOUND_MS)
    parser.add_argument(
        "--overload-factor",
        type=float,
        default=DEFAULT_OVERLOAD_FACTOR,
        help="after a server's first unsustained rate, one step at this multiple of it, to check "
        "that what it drops is announced with `lagged` (1 to skip)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the clients offer: permessage-deflate, as browsers do (default), or nothing",
    )
    parser.add_argument(
        "--server-compression",
        choices=("off", "on"),
        default="off" if not Settings.model_fields["ws_compression"].default else "on",
        help="whether both servers accept permessage-deflate: KEEL_WS_COMPRESSION for Keel, "
        "--ws-per-message-deflate for the baseline (default: Keel's default, off)",
    )
    parser.add_argument(
        "--reconnect-cycles",
        type=int,
        default=DEFAULT_RECONNECT_CYCLES,
        help="after the steps, open and close all the sockets this many more times, to see "
        "whether the server's memory keeps growing",
    )
    parser.add_argument(
        "--gc-probe",
        action="store_true",
        help="log each server's full garbage collections and their durations (a diagnostic)",
    )
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=run_module.READY_TIMEOUT_SECONDS,
        help="seconds a server may take to answer /health (raise it on a busy machine)",
    )
    parser.add_argument(
        "--redis-url", default=os.environ.get("KEEL_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    )
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR / "websocket.json", help="the JSON results"
    )
    arguments = parser.parse_args(argv)
    if min(arguments.connections, arguments.clients) < 1 or arguments.step_seconds <= 0:
        parser.error("--connections, --clients and --step-seconds must be positive")
    if arguments.reconnect_cycles < 0:
        parser.error("--reconnect-cycles must not be negative")
    if any(rate <= 0 for rate in arguments.rates):
        parser.error("--rates must be positive")
    return arguments


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    run_module.READY_TIMEOUT_SECONDS = arguments.start_timeout  # read by run.running_server
    return report_main(arguments, run, format_summary, arguments.output)


if __name__ == "__main__":
    sys.exit(main())
