"""KA2xx's vocabulary: which calls block, which objects are sync clients, what to use instead.

Shared by the extraction of function facts (`_blocking_facts`) and the analysis on them
(`blocking`), so both read one table.
"""

from __future__ import annotations

from dataclasses import dataclass

HTTP = "sync HTTP"
FILE = "file I/O"
_HTTP_VERBS = ("get", "post", "put", "patch", "delete", "head", "options", "request")

# Calls that block the thread, by dotted name → what they block on.
BLOCKING_CALLS: dict[str, str] = {
    **{f"requests.{verb}": HTTP for verb in _HTTP_VERBS},
    **{f"httpx.{verb}": HTTP for verb in (*_HTTP_VERBS, "stream")},
    "urllib.request.urlopen": HTTP,
    "urllib.request.urlretrieve": HTTP,
    "http.client.HTTPConnection": HTTP,
    "http.client.HTTPSConnection": HTTP,
    "time.sleep": "sleep",
    "builtins.open": FILE,
    "io.open": FILE,
    "shutil.copyfile": FILE,
    "shutil.copy": FILE,
    "shutil.copy2": FILE,
    "shutil.copytree": FILE,
    "shutil.rmtree": FILE,
    "shutil.move": FILE,
    "sqlite3.connect": "sync database driver",
    "psycopg2.connect": "sync database driver",
    "psycopg.connect": "sync database driver",
    "pymysql.connect": "sync database driver",
    "MySQLdb.connect": "sync database driver",
    "mysql.connector.connect": "sync database driver",
    "sqlalchemy.orm.Session": "sync SQLAlchemy session",
    "sqlmodel.Session": "sync SQLAlchemy session",
    "subprocess.run": "subprocess",
    "subprocess.call": "subprocess",
    "subprocess.check_call": "subprocess",
    "subprocess.check_output": "subprocess",
    "os.system": "subprocess",
    "os.popen": "subprocess",
    "smtplib.SMTP": "sync SMTP",
    "smtplib.SMTP_SSL": "sync SMTP",
    "socket.create_connection": "socket",
}
PATH_TYPES = frozenset({"pathlib.Path", "pathlib.PurePath", "pathlib.PosixPath"})
PATH_METHODS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes", "open"})

_ANY = frozenset[str]()  # "every method blocks, except the listed harmless ones"


@dataclass(frozen=True)
class SyncKind:
    label: str
    methods: frozenset[str]  # methods that block; empty: all except `harmless`
    harmless: frozenset[str] = frozenset()
    chained: bool = False  # methods of attributes block too (`client.db.users.find()`)

    def blocks(self, method: str) -> bool:
        if method.startswith("_"):
            return False
        return method in self.methods if self.methods else method not in self.harmless


_HTTP_CLIENT = SyncKind("sync HTTP client", frozenset({*_HTTP_VERBS, "send", "stream"}))
_REDIS = SyncKind(
    "sync Redis client",
    _ANY,
    frozenset({"pipeline", "pubsub", "lock", "register_script", "connection_pool", "close"}),
)
_BOTO = SyncKind(
    "boto3 client",
    _ANY,
    frozenset(
        {"get_paginator", "can_paginate", "get_waiter", "meta", "exceptions",
         "generate_presigned_url", "generate_presigned_post", "close"}
    ),
)  # fmt: skip
SESSION_KIND = SyncKind(
    "sync SQLAlchemy session",
    frozenset(
        {"execute", "query", "commit", "scalars", "scalar", "get", "flush", "refresh",
         "merge", "exec", "rollback", "connection", "delete"}
    ),
)  # fmt: skip
_ENGINE = SyncKind("sync SQLAlchemy engine", frozenset({"connect", "begin", "raw_connection"}))
_MONGO = SyncKind("sync MongoDB client", _ANY, frozenset({"close"}), chained=True)

# Constructors and annotations whose object is a sync client.
SYNC_TYPES: dict[str, SyncKind] = {
    "requests.Session": _HTTP_CLIENT,
    "requests.sessions.Session": _HTTP_CLIENT,
    "httpx.Client": _HTTP_CLIENT,
    "redis.Redis": _REDIS,
    "redis.StrictRedis": _REDIS,
    "redis.from_url": _REDIS,
    "redis.Redis.from_url": _REDIS,
    "redis.client.Redis": _REDIS,
    "redis.client.StrictRedis": _REDIS,
    "boto3.client": _BOTO,
    "boto3.resource": _BOTO,
    "sqlalchemy.orm.Session": SESSION_KIND,
    "sqlalchemy.orm.session.Session": SESSION_KIND,
    "sqlmodel.Session": SESSION_KIND,
    "sqlalchemy.create_engine": _ENGINE,
    "sqlalchemy.engine.create_engine": _ENGINE,
    "sqlmodel.create_engine": _ENGINE,
    "pymongo.MongoClient": _MONGO,
}
# Module-level factories whose *call* makes a sync session (`SessionLocal()`).
SESSION_FACTORIES = frozenset({"sqlalchemy.orm.sessionmaker", "sqlalchemy.orm.scoped_session"})

# Thread-pool wrappers: (dotted name, index of the function argument).
THREAD_WRAPPERS: dict[str, int] = {
    "asyncio.to_thread": 0,
    "starlette.concurrency.run_in_threadpool": 0,
    "fastapi.concurrency.run_in_threadpool": 0,
    "anyio.to_thread.run_sync": 0,
}
# Categories with a real async equivalent, and that equivalent (KA202).
ASYNC_EQUIVALENT: dict[str, str] = {
    HTTP: "httpx.AsyncClient",
    "sync HTTP client": "httpx.AsyncClient",
    "sleep": "asyncio.sleep",
    "sync database driver": "an async driver (asyncpg, aiosqlite, psycopg's AsyncConnection)",
    "sync SQLAlchemy session": "AsyncSession",
    "sync SQLAlchemy engine": "create_async_engine",
    "sync Redis client": "redis.asyncio",
    "boto3 client": "aioboto3 / aiobotocore",
    "sync MongoDB client": "motor / pymongo's AsyncMongoClient",
    "subprocess": "asyncio.create_subprocess_exec",
    "sync SMTP": "aiosmtplib",
}
