"""`keel serve`, with every connection-pool checkout timed (for bench/pool_wait.py).

    python bench/pool_wait_probe.py OUT.json serve --host 127.0.0.1 --port P --workers 1

Wraps `QueuePool._do_get`, the step every SQLAlchemy queue pool (the stock async one and
Keel's fair one alike) takes to lend a connection, so the same probe measures any revision
of Keel, whichever `keel` package is first on `sys.path`. Each checkout is recorded as
(asked, got, ok, opened) in `time.perf_counter()` seconds, `opened` when it opened a new
connection instead of taking or waiting for one; the list is written to OUT.json when the
server exits (SIGTERM: `keel serve` exits 0 after a clean shutdown). One worker process only.
"""

from __future__ import annotations

import atexit
import json
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.pool import QueuePool

Checkout = tuple[float, float, bool, bool]


def install(records: list[Checkout]) -> None:
    original = QueuePool._do_get

    def timed(pool: QueuePool) -> Any:
        asked = time.perf_counter()
        overflow = pool._overflow
        ok = False
        try:
            record = original(pool)
            ok = True
            return record
        finally:
            opened = pool._overflow > overflow  # opened a connection rather than queueing
            records.append((asked, time.perf_counter(), ok, opened))

    QueuePool._do_get = timed  # type: ignore[method-assign]


def main() -> None:
    out = Path(sys.argv[1])
    records: list[Checkout] = []
    install(records)
    atexit.register(lambda: out.write_text(json.dumps(records)))
    from keel.cli import main as keel_main

    sys.argv = ["keel", *sys.argv[2:]]
    keel_main()


if __name__ == "__main__":
    main()
