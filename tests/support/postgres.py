"""A real PostgreSQL server for the tests: Debian's server binaries, a new cluster in a
temporary folder, on a free loopback port, run as an unprivileged user (`postgres` when
the tests run as root, as PostgreSQL refuses root). Clients sign in with a password
(scram-sha-256), as they would on a shared server."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "animalcnn", "pg-secret"


def server_bin() -> Path | None:
    """The folder of `initdb` and `pg_ctl` (Debian keeps them off PATH), if installed."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A running cluster: its URL (no database named), and what the tests do to it."""

    bin_dir: Path
    folder: Path
    port: int
    as_user: list[str]

    @property
    def base(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}"

    def run(self, *command: str) -> None:
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, env=env)

    def database(self, name: str) -> str:
        """A new, empty database: its URL."""
        self.run(
            str(self.bin_dir / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            USER,
            name,
        )
        return f"{self.base}/{name}"

    def pg_ctl(self, action: str, *extra: str) -> None:
        """`start`, `stop` (fast: sessions are cut) or `restart` the server, waiting for it."""
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        )
        self.run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.folder / "data"),
            "-l",
            str(self.folder / "log"),
            "-o",
            options,
            "-m",
            "fast",
            "-w",
            action,
            *extra,
        )


@contextmanager
def postgres() -> Iterator[Server]:
    """A running server, stopped and removed afterwards."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise LookupError("PostgreSQL's server is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="animalcnn-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    server = Server(bin_dir, folder, _free_port(), as_user)
    secret = folder / "password"
    secret.write_text(PASSWORD)
    if as_user:
        os.chown(secret, pwd.getpwnam("postgres").pw_uid, -1)
    try:
        server.run(
            str(bin_dir / "initdb"),
            "-D",
            str(folder / "data"),
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={secret}",
            "-E",
            "UTF8",
        )
        server.pg_ctl("start")
        yield server
    finally:
        if (folder / "data").exists():
            subprocess.run(
                [
                    *as_user,
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(folder / "data"),
                    "-m",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
            )
        shutil.rmtree(folder, ignore_errors=True)
