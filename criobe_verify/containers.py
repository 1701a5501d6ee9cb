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
