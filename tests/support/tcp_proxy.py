"""A loopback TCP proxy the tests can cut, blackhole and restore, to play "the database went
away": `stop()` refuses and resets (a crashed server), `blackhole()` accepts and answers nothing
(packets dropped by a firewall or a dead network path, which no error ever reports)."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections: set[asyncio.StreamWriter] = set()
        self.blackholed = False
        self._dead: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port or 0, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every open connection, like a crashed database."""
        if self.server is not None:
            self.server.close()
            for writer in list(self.connections):
                writer.transport.abort()
            await self.server.wait_closed()
            self.server = None

    def blackhole(self) -> None:
        """From now on nothing arrives anywhere: open connections stop forwarding mid-stream,
        new ones are accepted and never answered. No reset, no error: only silence."""
        self.blackholed = True
        self._dead.update(self.connections)

    def restore(self) -> None:
        """New connections forward again; the ones silenced stay silent (their byte streams
        lost data, as after a real outage, so only a fresh connection can work)."""
        self.blackholed = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.blackholed:
            self.connections.add(writer)
            await self._swallow(reader, writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections.update({writer, upstream_writer})
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer)
        )

    async def _swallow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.connections.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if writer in self._dead:
                    continue  # dropped on the floor
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.connections.discard(writer)
            self._dead.discard(writer)
            with contextlib.suppress(Exception):
                writer.transport.abort()
