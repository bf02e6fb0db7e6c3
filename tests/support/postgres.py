"""A real PostgreSQL server for the tests: Debian's server binaries, a new cluster in a
temporary folder, on a free loopback port, run as an unprivileged user (`postgres` when
the tests run as root, as PostgreSQL refuses root)."""

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
from pathlib import Path

USER = "animalcnn"


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


@contextmanager
def postgres() -> Iterator[tuple[str, callable]]:
    """A running server: yields (the URL of a server with no database named, a function
    that creates a database and returns its URL). Stopped and removed afterwards."""
    bin_dir = server_bin()
    if bin_dir is None:
        raise LookupError("PostgreSQL's server is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="animalcnn-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", _free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, text=True)

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-o", options,
            "-w", "start")  # fmt: skip
        base = f"postgresql://{USER}@127.0.0.1:{port}"

        def database(name: str) -> str:
            run(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", USER, name)
            return f"{base}/{name}"

        yield base, database
    finally:
        if data.exists():
            subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "stop"], capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)
