"""GPUs for workers: how many exist, and which ids each worker gets through ``CUDA_VISIBLE_DEVICES``."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Mapping, Sequence

from ..errors import ServiceConfigError

__all__ = ["detect_gpus", "assign_gpus"]


def detect_gpus(env: Mapping[str, str] | None = None) -> int | None:
    """GPUs this machine shows (``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``); None when unknown."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([v for v in visible.split(",") if v.strip()])
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return len([line for line in out.splitlines() if line.startswith("GPU ")])


def assign_gpus(requests: Sequence[tuple[str, int, int]], available: int | None,
                source: str = "resources") -> dict[tuple[str, int], list[int]]:
    """``requests`` are ``(service, workers, gpus per worker)``; every worker gets distinct ids in order.

    Refuses, before anything starts, a request that does not fit: it names the service, what it asks and what
    exists (``--gpus N`` tells how many exist when they cannot be detected).
    """
    total = sum(workers * gpus for _, workers, gpus in requests)
    out: dict[tuple[str, int], list[int]] = {}
    if total == 0:
        return {(name, i): [] for name, workers, _ in requests for i in range(workers)}
    if available is None:
        first = next(name for name, _, gpus in requests if gpus)
        raise ServiceConfigError(source, f"{first}.ServiceArgs.resources.gpu",
                                 "asks for GPUs, and none can be detected here", "--gpus N to say how many exist")
    next_id = 0
    for name, workers, gpus in requests:
        if next_id + workers * gpus > available:
            raise ServiceConfigError(
                source, f"{name}.ServiceArgs.resources.gpu",
                f"{name} asks {workers} worker(s) x {gpus} GPU(s) = {workers * gpus}, but only "
                f"{available - next_id} of {available} GPU(s) are left", f"at most {available} GPU(s) in all")
        for i in range(workers):
            out[(name, i)] = list(range(next_id, next_id + gpus))
            next_id += gpus
    return out
