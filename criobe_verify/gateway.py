"""The address Docker's host-gateway gives containers, by platform.

    >>> expected_gateway_ip(platform_name="linux", bridge_gateway="172.17.0.1")
    '172.17.0.1'
    >>> expected_gateway_ip(platform_name="wsl2")
    '192.168.65.254'

CVAT reaches the bridge at `bridge.gateway` (extra_hosts `bridge.gateway:host-gateway`), and
Smokescreen must be told that address, so the suite needs to know which one the platform uses.
"""

from __future__ import annotations

import platform
from pathlib import Path

LINUX_DEFAULT = "172.17.0.1"
DOCKER_DESKTOP = {"wsl2": "192.168.65.254", "windows": "192.168.65.254", "macos": "192.168.65.1"}
PLATFORM_OF = {
    LINUX_DEFAULT: "Linux",
    DOCKER_DESKTOP["wsl2"]: "Docker Desktop on Windows/WSL2",
    DOCKER_DESKTOP["macos"]: "Docker Desktop on macOS",
}


def platform_of_address(ip: str) -> str | None:
    """Which platform's host gateway an address is, by the install guide's table.

    >>> platform_of_address("192.168.65.1")
    'Docker Desktop on macOS'
    """
    return PLATFORM_OF.get(ip)


def detect_platform(operating_system: str = "", kernel_release: str | None = None) -> str:
    """`linux`, `wsl2` or `macos` from the engine's OperatingSystem and the host's kernel."""
    if "Docker Desktop" in operating_system:
        if platform.system() == "Darwin":
            return "macos"
        return "wsl2"
    release = kernel_release if kernel_release is not None else platform.release()
    if "microsoft" in release.lower() or Path("/proc/sys/fs/binfmt_misc/WSLInterop").exists():
        return "wsl2"
    if platform.system() == "Darwin":
        return "macos"
    return "linux"


def expected_gateway_ip(platform_name: str, bridge_gateway: str | None = None) -> str:
    """Linux: the default bridge network's gateway (172.17.0.1 unless the daemon moved it)."""
    if platform_name == "linux":
        return bridge_gateway or LINUX_DEFAULT
    return DOCKER_DESKTOP[platform_name]
