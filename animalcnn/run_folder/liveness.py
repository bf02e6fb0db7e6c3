"""Whether the process working on a run or a trial still lives: its record (host, pid,
start time) and the heartbeat a live process keeps touching."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from animalcnn.run_folder.records import Process

HEARTBEAT_SECONDS = 10.0  # how often a training process touches `heartbeat`
# A process on another host whose heartbeat is older than this is taken for dead (hosts'
# clocks must agree to well within it).
STALE_AFTER_SECONDS = 60.0


def _process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), to tell it from a later
    process given the same pid; None where there is no such process."""
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.AccessDenied:  # it exists, but its start time is not ours to read
        return -1.0


def this_process() -> dict[str, Any]:
    """Where this process runs (host, pid, start time): how a run or a trial names the
    process working on it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _process_start(pid)}


def process_alive(record: Process | None, heartbeat_age: float | None) -> bool | None:
    """Whether the process in `record` still runs. A host judges only its own processes,
    by pid and start time; a process on another host is alive while its heartbeat is
    younger than STALE_AFTER_SECONDS. None when nothing was recorded."""
    if record is None:
        return None
    if record.host == socket.gethostname():
        if record.pid is None or record.pid <= 0:
            return False
        now = _process_start(record.pid)
        if now is None:
            return False
        if now < 0 or record.start is None:
            return True  # the pid runs; its start cannot be compared
        return abs(now - record.start) < 1.0
    return heartbeat_age is not None and heartbeat_age < STALE_AFTER_SECONDS


@contextmanager
def heartbeat(beat: Callable[[], None], seconds: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Call `beat` now and every `seconds` from a thread until the block ends: how a live
    process shows it lives to readers elsewhere."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            with contextlib.suppress(Exception):  # a missed beat is no reason to stop
                beat()
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=loop, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
