"""How one batch is split when it runs on several devices at once (JAX's DataParallel):
evenly, every device taking as many rows, and every process feeding the rows of its own
devices. On one device (`WHOLE`) a batch goes as it is."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Share:
    """How a batch is split: evenly over `devices` in all, this process (number `process`
    of `processes`) feeding the rows of its own devices, one contiguous block."""

    devices: int = 1
    process: int = 0
    processes: int = 1

    def padding(self, rows: int) -> int:
        """Rows to add to `rows` for them to split evenly."""
        return -rows % self.devices

    def training(self, idx: np.ndarray) -> np.ndarray:
        """This process's rows of a training batch; a short last batch loses the few rows
        (fewer than `devices`) that would not split evenly: other images each epoch."""
        kept = idx[: len(idx) - len(idx) % self.devices]
        return np.split(kept, self.processes)[self.process]

    def evaluation(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows of an evaluation batch and their weights: a short batch is
        padded with copies of its last image, weighted 0, so every image counts once."""
        pad = self.padding(len(idx))
        padded = np.concatenate([idx, np.repeat(idx[-1:], pad)])
        weights = np.concatenate([np.ones(len(idx), np.float32), np.zeros(pad, np.float32)])
        mine = np.split(np.arange(len(padded)), self.processes)[self.process]
        return padded[mine], weights[mine]


WHOLE = Share()
