"""Small views of Docker containers for failure messages: state and logs.

>>> describe_state({"Status": "exited", "ExitCode": 137, "Restarting": False})
"status 'exited' (exit code 137)"
"""

from __future__ import annotations

from typing import Any

from criobe_verify.redact import REDACTOR


def describe_state(state: dict[str, Any]) -> str:
    text = f"status {state.get('Status')!r}"
    if state.get("Status") in ("exited", "dead"):
        text += f" (exit code {state.get('ExitCode')})"
    if state.get("Error"):
        text += f" error {state['Error']!r}"
    health = (state.get("Health") or {}).get("Status")
    if health:
        text += f", health {health!r}"
    return text


def logs_tail(container: Any, lines: int = 15) -> str:
    """The last lines of a container's logs, redacted, indented for a failure message."""
    try:
        raw = container.logs(tail=lines, stdout=True, stderr=True).decode("utf-8", "replace")
    except Exception as exc:  # a vanished container must not hide the original failure
        return f"    (logs unavailable: {exc})"
    text = REDACTOR(raw.rstrip())
    if not text:
        return "    (no log output)"
    return "\n".join("    | " + line for line in text.splitlines())


def container_env(container: Any) -> dict[str, str]:
    """The environment the container was created with (`docker inspect` Config.Env).

    >>> class C: attrs = {"Config": {"Env": ["A=1", "SMOKESCREEN_OPTS=--allow-address=x=y"]}}
    >>> container_env(C())
    {'A': '1', 'SMOKESCREEN_OPTS': '--allow-address=x=y'}
    """
    env = {}
    for item in container.attrs["Config"].get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def extra_hosts(container: Any) -> list[str]:
    """Its extra_hosts as Docker keeps them: ["bridge.gateway:host-gateway", ...]."""
    return list(container.attrs["HostConfig"].get("ExtraHosts") or [])


def network_ip(container: Any, network: str) -> str | None:
    """Its IPv4 address on the network; None when it is not on it."""
    networks = container.attrs["NetworkSettings"]["Networks"]
    return (networks.get(network) or {}).get("IPAddress") or None
