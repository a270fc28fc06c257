"""Upload 1 GiB to a running Keel and measure the server's memory and the throughput.

Run from the repository root:

    .venv/bin/python bench/features/files/upload.py [--size-mib 1024] [--chunked]

Keel runs as `keel serve` with production settings on PostgreSQL (the `keel_bench` database,
set up exactly as bench/run.py does it) and `KEEL_STORAGE_URL=file://<temporary directory>`.
A bench account registers and logs in through the API, then one multipart upload
(`POST /api/v1/files`, field `file`, `text/plain`) streams `--size-mib` MiB of ASCII text
lines generated on the fly: the client never holds more than one 1 MiB block. Meanwhile a
thread samples the server's resident memory (VmRSS) every 50 ms. As a baseline, the same
generator writes the same bytes to a local file with plain Python, in the same run, so the
upload's throughput can be given as a ratio. Results are printed and written to
`bench/results/upload.json`. See `bench/README.md`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for run.py

from run import (
    LOAD_CPU,
    RESULTS_DIR,
    BenchError,
    Server,
    Shared,
    _describe,
    bearer,
    bench_database_url,
    ensure_database,
    free_ports,
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

MIB = 1024 * 1024
DEFAULT_SIZE_MIB = 1024
DEFAULT_ROUNDS = 5
BLOCK_BYTES = MIB  # what the generator yields at a time: the most the client holds
# The server must accept the whole multipart body (the file plus its framing), no more.
UPLOAD_LIMIT_MARGIN = MIB
SAMPLE_SECONDS = 0.05
TARGET_GROWTH_MIB = 64.0
WARMUP_BYTES = MIB  # one small upload first, so first-use imports and pools are not counted
UPLOAD_TIMEOUT_SECONDS = 1800.0
BOUNDARY = "keel-bench-upload-boundary-7f3a9c"
FILENAME = "upload-bench.txt"
CONTENT_TYPE = "text/plain"
UPLOAD_USER_EMAIL = "bench-upload@example.com"
UPLOAD_USER_NAME = "Bench Uploader"
SERVER_NAME = "keel-upload"  # its output goes to bench/results/keel-upload-server.log


# --- the bytes ------------------------------------------------------------------------------


class TextSource:
    """`size` bytes of ASCII text lines, made one block at a time, hashed as they are made.

    Each block starts with a line carrying its number (so no two blocks are equal), followed
    by fixed-width numbered lines; the last block is cut to size. Both the upload and the
    local-file baseline read the bytes from an instance of this, so they pay the same cost
    to produce (and hash) them.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.produced = 0
        self.digest = hashlib.sha256()
        lines = [
            f"{n:06d} Keel upload benchmark: streamed text, never buffered whole.\n".encode()
            for n in range(BLOCK_BYTES // 64 + 1)
        ]
        self._body = b"".join(lines)

    def _block(self, number: int) -> bytes:
        head = f"block {number:012d} of the Keel upload benchmark ---------------------\n"
        block = head.encode() + self._body
        return block[:BLOCK_BYTES]

    def __iter__(self) -> Iterator[bytes]:
        number = 0
        while self.produced < self.size:
            block = self._block(number)[: self.size - self.produced]
            self.digest.update(block)
            self.produced += len(block)
            number += 1
            yield block

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


def multipart_body(source: TextSource) -> tuple[Iterator[bytes], int]:
    """A `multipart/form-data` body with one file field, as a generator, and its length."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{FILENAME}"\r\n'
        f"Content-Type: {CONTENT_TYPE}\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def parts() -> Iterator[bytes]:
        yield head
        yield from source
        yield tail

    return parts(), len(head) + source.size + len(tail)


# --- memory ---------------------------------------------------------------------------------


def reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of `pid`; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class RssSampler:
    """Samples a process's VmRSS every SAMPLE_SECONDS from a thread, until stopped."""

    pid: int
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            try:
                rss = status_kib(self.pid, "VmRSS")
            except (OSError, BenchError):
                return  # the server is gone; the upload will report why
            self.samples.append((time.monotonic() - started, rss))
            if self._stop.wait(SAMPLE_SECONDS):
                return

    @property
    def peak_kib(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


# --- the two measurements -------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    seconds: float
    size: int

    @property
    def mib_per_second(self) -> float:
        return self.size / MIB / self.seconds


def generate_only(size: int) -> Timed:
    """What the generator alone costs (making and hashing the bytes): the client's ceiling."""
    source = TextSource(size)
    started = time.perf_counter()
    for _ in source:
        pass
    return Timed(time.perf_counter() - started, size)


def write_local_file(size: int, directory: Path) -> tuple[Timed, str]:
    """The baseline: the same generator's bytes into a local file with plain Python writes."""
    source = TextSource(size)
    path = directory / "baseline.txt"
    os.sync()  # start with no dirty pages left from the previous write, as the upload does
    started = time.perf_counter()
    with path.open("wb") as handle:
        for block in source:
            handle.write(block)
    seconds = time.perf_counter() - started
    written = path.stat().st_size
    path.unlink()
    if written != size:
        raise BenchError(f"the baseline file has {written} bytes, not {size}")
    return Timed(seconds, size), source.sha256


def upload(
    client: httpx.Client, size: int, *, chunked: bool
) -> tuple[Timed, TextSource, dict[str, Any]]:
    """POST one multipart upload of `size` generated bytes; the timed span ends with the 201."""
    source = TextSource(size)
    body, length = multipart_body(source)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if not chunked:
        headers["Content-Length"] = str(length)  # else httpx sends it chunked
    started = time.perf_counter()
    try:
        response = client.post("/api/v1/files", content=body, headers=headers)
    except httpx.HTTPError as error:
        raise BenchError(
            f"the upload failed after {source.produced:,} bytes: {error!r}; "
            f"see bench/results/{SERVER_NAME}-server.log"
        ) from error
    seconds = time.perf_counter() - started
    if response.status_code != 201:
        raise BenchError(f"the upload answered {_describe(response)}")
    return Timed(seconds, size), source, response.json()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def verify(answer: dict[str, Any], source: TextSource, storage_dir: Path) -> dict[str, Any]:
    """The 201's size and sha256 against what was sent, and the stored object on disk."""
    problems = []
    if source.produced != source.size:
        problems.append(f"the client produced {source.produced} bytes, not {source.size}")
    if answer.get("size") != source.size:
        problems.append(f"Keel answered size {answer.get('size')}, sent {source.size}")
    if answer.get("sha256") != source.sha256:
        problems.append(f"Keel answered sha256 {answer.get('sha256')}, sent {source.sha256}")
    if answer.get("content_type") != CONTENT_TYPE:
        problems.append(f"Keel stored the type {answer.get('content_type')!r}")
    stored = storage_dir / "files" / str(answer.get("id"))
    if not stored.is_file():
        problems.append(f"there is no stored object at {stored}")
    elif file_sha256(stored) != source.sha256:
        problems.append(f"the stored object {stored} does not hash to what was sent")
    if problems:
        raise BenchError("the upload is not what was sent: " + "; ".join(problems))
    return {
        "size": answer["size"],
        "sha256": answer["sha256"],
        "content_type": answer["content_type"],
        "stored_object_sha256_matches": True,
    }


# --- running --------------------------------------------------------------------------------


def upload_environment(shared: Shared, storage_dir: Path, size: int) -> dict[str, str]:
    """bench/run.py's production settings, plus file storage and an upload limit for `size`."""
    return {
        **keel_environment(shared),
        "KEEL_STORAGE_URL": f"file://{storage_dir}",
        "KEEL_MAX_UPLOAD_BYTES": str(size + UPLOAD_LIMIT_MARGIN),
    }


def pin_client() -> str | None:
    """Keep this process (generator, hashing, httpx) off the server's CPU, like wrk in run.py."""
    if (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return None
    os.sched_setaffinity(0, {int(LOAD_CPU)})
    return LOAD_CPU


@dataclass(frozen=True)
class Round:
    """One round: the local-file baseline, then the upload with its memory figures."""

    local: Timed
    upload: Timed
    memory: dict[str, Any]

    @property
    def ratio(self) -> float:
        return self.upload.mib_per_second / self.local.mib_per_second


def sampled_upload(
    client: httpx.Client, keel_pid: int, size: int, storage_dir: Path, *, chunked: bool
) -> tuple[Timed, dict[str, Any], dict[str, Any]]:
    """One big upload with the memory sampler on; checks it and deletes it afterwards."""
    os.sync()  # start with no dirty pages left from the previous write, as the baseline does
    time.sleep(0.5)  # let the server settle (after-commit deletes, logging)
    peak_reset = reset_peak_rss(keel_pid)
    before_kib = status_kib(keel_pid, "VmRSS")
    with RssSampler(keel_pid) as sampler:
        timed, source, answer = upload(client, size, chunked=chunked)
    hwm_kib = status_kib(keel_pid, "VmHWM")
    after_kib = status_kib(keel_pid, "VmRSS")
    checked = verify(answer, source, storage_dir)
    deleted = client.delete(f"/api/v1/files/{answer['id']}")
    if deleted.status_code != 204:
        raise BenchError(f"deleting the uploaded file answered {_describe(deleted)}")
    # The kernel's mark also catches a spike shorter than the sampling interval.
    peak_kib = max(sampler.peak_kib, hwm_kib) if peak_reset else sampler.peak_kib
    memory = {
        "rss_before_upload_mib": round(before_kib / 1024, 1),
        "rss_peak_sampled_mib": round(sampler.peak_kib / 1024, 1),
        "rss_peak_kernel_mib": round(hwm_kib / 1024, 1) if peak_reset else None,
        "rss_peak_mib": round(peak_kib / 1024, 1),
        "rss_after_upload_mib": round(after_kib / 1024, 1),
        "rss_growth_mib": round((peak_kib - before_kib) / 1024, 1),
        "samples": len(sampler.samples),
    }
    return timed, checked, memory


def measure(
    keel: Server, size: int, scratch: Path, storage_dir: Path, arguments: argparse.Namespace
) -> tuple[list[Round], dict[str, Any], float]:
    """Log in, warm up, then `--rounds` rounds of local write and upload, one at a time.

    The warm-up writes the local file once and uploads 1 MiB, both unrecorded: on the VM
    these figures were taken on, the first gigabyte written after a pause ran at a fraction
    of the later speed, and the server's first upload pays for first-use imports and pool
    connections.
    """
    if keel.pid is None:
        raise BenchError("the server's process id is unknown")
    register(keel, UPLOAD_USER_EMAIL, UPLOAD_USER_NAME)
    headers = bearer(login(keel, UPLOAD_USER_EMAIL))
    timeout = httpx.Timeout(UPLOAD_TIMEOUT_SECONDS, connect=10.0)
    rounds: list[Round] = []
    with httpx.Client(
        base_url=keel.base_url, headers=headers, timeout=timeout, trust_env=False
    ) as client:
        rss_started_kib = status_kib(keel.pid, "VmRSS")
        print("warm-up: one unrecorded local write and a 1 MiB upload ...", flush=True)
        _, expected_sha256 = write_local_file(size, scratch)
        _, warmup_source, warmup = upload(client, WARMUP_BYTES, chunked=arguments.chunked)
        verify(warmup, warmup_source, storage_dir)
        client.delete(f"/api/v1/files/{warmup['id']}")
        for number in range(1, arguments.rounds + 1):
            local, local_sha256 = write_local_file(size, scratch)
            timed, checked, memory = sampled_upload(
                client, keel.pid, size, storage_dir, chunked=arguments.chunked
            )
            if expected_sha256 != local_sha256 or checked["sha256"] != local_sha256:
                raise BenchError("the baseline and the upload did not produce the same bytes")
            rounds.append(Round(local, timed, memory))
            print(
                f"  round {number}: local write {local.mib_per_second:,.1f} MiB/s, upload "
                f"{timed.mib_per_second:,.1f} MiB/s, server RSS growth "
                f"{memory['rss_growth_mib']:.1f} MiB",
                flush=True,
            )
    return rounds, checked, rss_started_kib / 1024


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    size = arguments.size_mib * MIB
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    client_cpu = pin_client()
    database_url = bench_database_url()
    ensure_database(database_url)
    shared = Shared.for_run(database_url)
    with tempfile.TemporaryDirectory(prefix="keel-bench-upload-") as temporary:
        scratch = Path(temporary)
        storage_dir = scratch / "storage"
        storage_dir.mkdir()
        environment = upload_environment(shared, storage_dir, size)
        migrate(environment)
        (port,) = free_ports(1)
        with running_server(SERVER_NAME, keel_command(port), environment, port) as keel:
            print(f"{size / MIB:,.0f} MiB to {keel.base_url}/api/v1/files", flush=True)
            rounds, checked, rss_started_mib = measure(keel, size, scratch, storage_dir, arguments)
        generator = generate_only(size)
    upload_mib_s = statistics.median([r.upload.mib_per_second for r in rounds])
    local_mib_s = statistics.median([r.local.mib_per_second for r in rounds])
    worst = max(rounds, key=lambda r: r.memory["rss_growth_mib"])
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/features/files/upload.py", *sys.argv[1:]]),
        "size_bytes": size,
        "transfer": "chunked" if arguments.chunked else "content-length",
        "rounds": len(rounds),
        "client_cpu": client_cpu,
        "upload_median_mib_per_second": round(upload_mib_s, 1),
        "local_file_write_median_mib_per_second": round(local_mib_s, 1),
        "throughput_ratio_upload_to_local_write": round(upload_mib_s / local_mib_s, 3),
        "generator_only_mib_per_second": round(generator.mib_per_second, 1),
        "response": checked,
        "server_memory": {
            "rss_after_start_mib": round(rss_started_mib, 1),
            **worst.memory,
            "sample_interval_s": SAMPLE_SECONDS,
            "worst_of_rounds": True,
        },
        "target_rss_growth_mib": TARGET_GROWTH_MIB,
        "passed": worst.memory["rss_growth_mib"] < TARGET_GROWTH_MIB,
        "per_round": [
            {
                "local_write_s": round(r.local.seconds, 3),
                "local_write_mib_per_second": round(r.local.mib_per_second, 1),
                "upload_s": round(r.upload.seconds, 3),
                "upload_mib_per_second": round(r.upload.mib_per_second, 1),
                "ratio": round(r.ratio, 3),
                "rss_growth_mib": r.memory["rss_growth_mib"],
                "rss_peak_mib": r.memory["rss_peak_mib"],
            }
            for r in rounds
        ],
        "client_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "machine": machine_description(arguments.cpu_busy),
    }


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Measure a streamed 1 GiB upload to Keel.")
    parser.add_argument(
        "--size-mib", type=int, default=DEFAULT_SIZE_MIB, help="file size in MiB (1024)"
    )
    parser.add_argument(
        "--chunked",
        action="store_true",
        help="send the body with Transfer-Encoding: chunked instead of a Content-Length",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help="alternating local-write/upload rounds; the medians are reported (5)",
    )
    arguments = parser.parse_args(argv)
    if min(arguments.size_mib, arguments.rounds) < 1:
        parser.error("--size-mib and --rounds must be at least 1")
    return arguments


def format_summary(document: dict[str, Any]) -> str:
    memory = document["server_memory"]
    verdict = "PASS" if document["passed"] else "ABOVE TARGET"
    return (
        f"upload {document['upload_median_mib_per_second']:,.1f} MiB/s, local write "
        f"{document['local_file_write_median_mib_per_second']:,.1f} MiB/s (medians of "
        f"{document['rounds']}; ratio {document['throughput_ratio_upload_to_local_write']:.2f}); "
        f"server RSS {memory['rss_before_upload_mib']:.1f} -> peak {memory['rss_peak_mib']:.1f} "
        f"MiB, growth {memory['rss_growth_mib']:.1f} MiB (worst round; target < "
        f"{TARGET_GROWTH_MIB:.0f}): {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return report_main(parse_arguments(argv), run, format_summary, "upload.json")


if __name__ == "__main__":
    sys.exit(main())
