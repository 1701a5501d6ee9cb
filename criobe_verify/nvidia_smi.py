"""nvidia-smi's CSV answers (`--format=csv,noheader,nounits`), read into typed facts: run on
the stack's host or inside a function's container, the same parsing serves both.

    >>> parse_compute_apps("4242, 2311\\n977, 5120\\n")
    (ComputeApp(pid=4242, used_mib=2311), ComputeApp(pid=977, used_mib=5120))
    >>> parse_gpus("0, NVIDIA GeForce RTX 3090, 550.54.14, 24576\\n")
    (Gpu(index=0, name='NVIDIA GeForce RTX 3090', driver='550.54.14', memory_mib=24576),)

A value nvidia-smi cannot give ("[N/A]", "[Insufficient Permissions]") reads as 0 MiB: the
process is listed, its memory unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

QUERY_APPS = ("--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits")
QUERY_GPUS = ("--query-gpu=index,name,driver_version,memory.total", "--format=csv,noheader,nounits")


@dataclass(frozen=True)
class ComputeApp:
    """A process holding GPU memory, as nvidia-smi lists it (its pid as the driver sees it)."""

    pid: int
    used_mib: int


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    driver: str
    memory_mib: int


def _int(text: str) -> int:
    text = text.strip()
    return int(text) if text.isdigit() else 0


def _rows(text: str, width: int) -> list[list[str]]:
    rows = [[c.strip() for c in line.split(",")] for line in text.splitlines() if line.strip()]
    return [r for r in rows if len(r) >= width]


def parse_compute_apps(text: str) -> tuple[ComputeApp, ...]:
    return tuple(ComputeApp(_int(r[0]), _int(r[1])) for r in _rows(text, 2) if r[0].isdigit())


def parse_gpus(text: str) -> tuple[Gpu, ...]:
    """One per GPU; a name holding a comma is joined back (the driver and memory come last)."""
    return tuple(
        Gpu(_int(r[0]), ", ".join(r[1:-2]), r[-2], _int(r[-1]))
        for r in _rows(text, 4)
        if r[0].isdigit()
    )
