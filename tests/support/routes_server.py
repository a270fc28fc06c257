"""`python -m tests.support.routes_server PORT`: the real app plus the test-only routes,
under uvicorn in a process of its own, configured from `KEEL_*` like `keel serve`.

For tests that need the process boundary (its own stdout, its own event loop) and a route
that fails on purpose, which `keel serve` cannot mount.
"""

from __future__ import annotations

import sys

import uvicorn

from keel.main import create_app
from tests.support import routes


def main(port: int) -> None:
    application = create_app()
    application.include_router(routes.router)
    uvicorn.run(application, host="127.0.0.1", port=port, log_config=None, access_log=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
