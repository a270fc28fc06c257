"""Real servers on loopback for tests: any ASGI app under uvicorn, and moto's S3.

Both run in background threads of the test process, so coverage sees the code they run and
nothing outlives the test. The uvicorn helper binds its socket before starting the server, so
there is no window in which another process could take the port.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import uvicorn
from moto.server import ThreadedMotoServer
from starlette.types import ASGIApp

from tests.support.network import free_port

STARTUP_SECONDS = 30
SHUTDOWN_SECONDS = 15
MOTO_REGION = "us-east-1"
MOTO_ACCESS_KEY_ID = "testing-access-key"
MOTO_SECRET_ACCESS_KEY = "testing-secret-key"  # moto accepts any credentials


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


_PARKED = threading.Event()  # never set


def _serve_then_park(server: uvicorn.Server, sock: socket.socket, done: threading.Event) -> None:
    """Run the server, then keep the thread (a daemon) alive until the process exits.

    A thread that ran the app ran SQLAlchemy's greenlets. When such a thread ends, greenlet
    destroys its thread state later, from a pending call in the main thread, and with greenlet
    3.5.6 on Python 3.11 that destruction was seen to spin forever inside a weakref callback
    (a whole CI run hung in an unrelated test). A parked daemon thread never ends, so its
    greenlet state is never destroyed from another thread.
    """
    try:
        server.run(sockets=[sock])
    finally:
        done.set()
    _PARKED.wait()


@contextmanager
def uvicorn_server(app: ASGIApp, *, name: str = "test-server", **config: Any) -> Iterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 in a thread; yield its base URL.

    `config` goes to `uvicorn.Config` (e.g. `lifespan="on"`). The server is asked to stop when
    the block ends, forced if it does not, and a server that still will not stop is an error.
    The thread stays parked afterwards (see `_serve_then_park`).
    """
    sock = _listening_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **config)
    )
    done = threading.Event()
    thread = threading.Thread(target=_serve_then_park, args=(server, sock, done), name=name)
    thread.daemon = True
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            if done.is_set():
                raise RuntimeError(f"{name} stopped during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {STARTUP_SECONDS} s")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        if not done.wait(timeout=SHUTDOWN_SECONDS):
            server.force_exit = True
            done.wait(timeout=SHUTDOWN_SECONDS)
        sock.close()
    if not done.is_set():
        raise RuntimeError(f"{name} did not shut down in {2 * SHUTDOWN_SECONDS} s")


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 (server mode, real HTTP) on 127.0.0.1; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the moto server at `endpoint` (dummy credentials)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=MOTO_REGION,
        aws_access_key_id=MOTO_ACCESS_KEY_ID,
        aws_secret_access_key=MOTO_SECRET_ACCESS_KEY,
    )


@dataclass(frozen=True)
class Bucket:
    """A bucket created on a moto server, and a boto3 client to look inside it."""

    endpoint: str
    name: str
    client: Any

    def keys(self, prefix: str = "") -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]

    def unfinished_uploads(self) -> list[str]:
        """Keys of multipart uploads that were started and neither completed nor aborted."""
        listing = self.client.list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in listing.get("Uploads", [])]

    def uploaded_parts(self) -> int:
        """How many parts the unfinished multipart uploads hold between them."""
        listing = self.client.list_multipart_uploads(Bucket=self.name)
        return sum(
            len(
                self.client.list_parts(
                    Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"]
                ).get("Parts", [])
            )
            for upload in listing.get("Uploads", [])
        )

    def read(self, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        return body


def new_bucket(endpoint: str) -> Bucket:
    """A fresh, uniquely named bucket (moto's state is process-wide, so names never repeat)."""
    client = s3_client(endpoint)
    name = f"keel-test-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    return Bucket(endpoint=endpoint, name=name, client=client)
