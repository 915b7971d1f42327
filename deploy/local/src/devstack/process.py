"""A child process with its own process group, a log file, and an orderly stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

_COLORS = ("36", "33", "35", "32", "34", "31", "96", "93", "95", "92")


class ManagedProcess:
    """Runs ``argv`` in a new session (so terminal signals reach only the launcher).

    Output goes to ``log_path``; with ``console=True`` it is also echoed to our stdout,
    each line prefixed with ``[name]``.
    """

    _count = 0

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
        console: bool,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = cwd
        self.log_path = log_path
        self.console = console
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False  # set by the launcher once the health check passed
        self._log: IO[bytes] | None = None
        self._pump: asyncio.Task[None] | None = None
        color = _COLORS[ManagedProcess._count % len(_COLORS)]
        ManagedProcess._count += 1
        prefix = f"[{name}] "
        if sys.stdout.isatty():
            prefix = f"\x1b[{color}m[{name}]\x1b[0m "
        self._prefix = prefix.encode()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self._log = _open_log(self.log_path, self.argv)
        out: int | IO[bytes] = asyncio.subprocess.PIPE if self.console else self._log
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except BaseException:
            self._close_log()
            raise
        if self.console:
            assert self.proc.stdout is not None
            self._pump = asyncio.create_task(self._pump_output(self.proc.stdout))

    async def _pump_output(self, stream: asyncio.StreamReader) -> None:
        pending = b""
        out = sys.stdout.buffer
        while chunk := await stream.read(65536):
            if self._log:
                self._log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            if lines:
                out.write(b"".join(self._prefix + line + b"\n" for line in lines))
                out.flush()
        if pending:
            out.write(self._prefix + pending + b"\n")
            out.flush()

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, limit: float) -> int | None:
        """SIGTERM, wait ``limit`` s, SIGKILL; then clear what is left of its group."""
        if self.proc is None:
            return None
        pgid = self.proc.pid  # leader of its own session and group
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), limit)
            except TimeoutError:
                print(
                    f"[devstack] {self.name} still running after {limit:.0f} s; killing it",
                    flush=True,
                )
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                await self.proc.wait()
        await kill_group(pgid)
        if self._pump:
            try:
                await asyncio.wait_for(self._pump, 2)
            except (TimeoutError, asyncio.CancelledError):
                pass
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None

    def tail(self, n: int = 30) -> list[str]:
        return tail_file(self.log_path, n)


async def kill_group(pgid: int, grace: float = 2.0) -> None:
    """Stop any process still in group ``pgid`` (helpers the leader left behind)."""
    if not group_alive(pgid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while group_alive(pgid) and loop.time() < deadline:  # noqa: ASYNC110 - nothing to await
        await asyncio.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _open_log(path: Path, argv: Sequence[str]) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "wb", buffering=0)  # closed by ManagedProcess._close_log
    log.write(f"$ {' '.join(argv)}\n".encode())
    return log


def tail_file(path: Path, n: int = 30) -> list[str]:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    return data.decode(errors="replace").splitlines()[-n:]
