"""The bridge's settings: the CRIOBE variables (either documented set) and the twin's knobs.

The CRIOBE docs name two incompatible variable sets for bridge/.env; both are read, set A's
names winning when both are present:

    set A   CVAT_URL, CVAT_USER, CVAT_PWD, WEBHOOK_SECRET, CACHE_DIR, AUTO_ANN_TIMEOUT
    set B   CVAT_URL, CVAT_USERNAME, CVAT_PASSWORD, NUCLIO_HOST, NUCLIO_PORT, BRIDGE_PORT,
            CACHE_DIR, AUTO_ANN_TIMEOUT, LOG_LEVEL

What the docs leave unknown about the real bridge is a twin knob (``BRIDGE_TWIN_*``, see
twin/bridge/README.md). A bad knob value stops the bridge at start, so a typo never runs a
different variant silently:

    >>> s = Settings.from_env({"CVAT_USERNAME": "admin", "CVAT_PASSWORD": "pw"})
    >>> s.cvat_user, s.detect_via, s.warped_name("Tetiaroa_1994_01")
    ('admin', 'direct', 'Tetiaroa_1994_01_warped')
    >>> Settings.from_env({"BRIDGE_TWIN_DETECT_VIA": "nuclio"})
    Traceback (most recent call last):
    ...
    ValueError: BRIDGE_TWIN_DETECT_VIA must be one of direct, lambda; got 'nuclio'
    >>> "pw" in Settings.from_env({"CVAT_PWD": "pw"}).describe()
    False
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise ValueError(f"{name} must be true or false; got {env.get(name)!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {env.get(name)!r}")
    return value


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds; got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive; got {raw!r}")
    return value


def _template(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        value.format(name="x")
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{name} may only use {{name}}; got {value!r}") from None
    if "{name}" not in value:
        raise ValueError(f"{name} must contain {{name}} (the source task's name); got {value!r}")
    return value


def health_methods(env: Mapping[str, str] = os.environ) -> list[str]:
    """The methods /health answers (BRIDGE_TWIN_HEALTH_METHODS, default GET,POST).

    >>> health_methods({"BRIDGE_TWIN_HEALTH_METHODS": " get, POST ,"})
    ['GET', 'POST']
    """
    value = env.get("BRIDGE_TWIN_HEALTH_METHODS", "GET,POST")
    return [m.strip().upper() for m in value.split(",") if m.strip()] or ["GET", "POST"]


def _warp_size(env: Mapping[str, str]) -> str:
    value = (env.get("BRIDGE_TWIN_WARP_SIZE") or "photo").strip().lower()
    if value in ("photo", "quadrat") or (value.isdigit() and int(value) > 0):
        return value
    raise ValueError(
        f"BRIDGE_TWIN_WARP_SIZE must be photo, quadrat or a number of pixels; got {value!r}"
    )


FAULTS = ("redetect-on-every-update", "log-settings-with-password")


def _faults(env: Mapping[str, str]) -> tuple[str, ...]:
    """The defects the selftests inject; an unknown name stops the bridge.

    >>> _faults({"BRIDGE_TWIN_FAULT": "redetect-on-every-update, "})
    ('redetect-on-every-update',)
    """
    names = tuple(f.strip() for f in (env.get("BRIDGE_TWIN_FAULT") or "").split(",") if f.strip())
    unknown = [f for f in names if f not in FAULTS]
    if unknown:
        raise ValueError(f"BRIDGE_TWIN_FAULT must name {', '.join(FAULTS)}; got {unknown[0]!r}")
    return names


@dataclass(frozen=True)
class Settings:
    # CRIOBE variables (sets A and B)
    cvat_url: str = "http://cvat-server:8080"
    cvat_user: str = ""
    cvat_password: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    cache_dir: str = "/tmp/cvat_cache"
    auto_ann_timeout: float = 900.0
    nuclio_host: str = "nuclio"
    nuclio_port: int = 8070
    log_level: str = "INFO"
    # twin knobs: what the CRIOBE docs leave unknown (twin/bridge/README.md)
    health_methods: tuple[str, ...] = ("GET", "POST")
    refuse_unsigned: bool = True
    ping_checks_target: bool = False
    detect_via: str = "direct"
    function_url: str = "http://nuclio-nuclio-{name}:8080"
    shape_source: str = "auto"
    detect_cleanup: bool = False
    warped_task_name: str = "{name}_warped"
    clean_task_name: str = "{name}_clean"
    warp_size: str = "photo"
    poll_interval: float = 0.5
    # The selftests' injected defects (BRIDGE_TWIN_FAULT, a comma list of FAULTS).
    faults: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        port = (env.get("NUCLIO_PORT") or "8070").strip()
        if not port.isdigit():
            raise ValueError(f"NUCLIO_PORT must be a port number; got {port!r}")
        level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"LOG_LEVEL must be a logging level name; got {level!r}")
        function_url = env.get("BRIDGE_TWIN_FUNCTION_URL") or cls.function_url
        if "{name}" not in function_url:
            raise ValueError(
                f"BRIDGE_TWIN_FUNCTION_URL must contain {{name}}; got {function_url!r}"
            )
        return cls(
            cvat_url=(env.get("CVAT_URL") or cls.cvat_url).rstrip("/"),
            cvat_user=env.get("CVAT_USER") or env.get("CVAT_USERNAME") or "",
            cvat_password=env.get("CVAT_PWD") or env.get("CVAT_PASSWORD") or "",
            webhook_secret=env.get("WEBHOOK_SECRET") or "",
            cache_dir=env.get("CACHE_DIR") or cls.cache_dir,
            auto_ann_timeout=_number(env, "AUTO_ANN_TIMEOUT", 900.0),
            nuclio_host=env.get("NUCLIO_HOST") or cls.nuclio_host,
            nuclio_port=int(port),
            log_level=level,
            health_methods=tuple(health_methods(env)),
            refuse_unsigned=_flag(env, "BRIDGE_TWIN_REFUSE_UNSIGNED", True),
            ping_checks_target=_flag(env, "BRIDGE_TWIN_PING_CHECKS_TARGET", False),
            detect_via=_choice(env, "BRIDGE_TWIN_DETECT_VIA", ("direct", "lambda"), "direct"),
            function_url=function_url,
            shape_source=_choice(env, "BRIDGE_TWIN_SHAPE_SOURCE", ("auto", "manual"), "auto"),
            detect_cleanup=_flag(env, "BRIDGE_TWIN_DETECT_CLEANUP", False),
            warped_task_name=_template(env, "BRIDGE_TWIN_WARPED_TASK_NAME", "{name}_warped"),
            clean_task_name=_template(env, "BRIDGE_TWIN_CLEAN_TASK_NAME", "{name}_clean"),
            warp_size=_warp_size(env),
            poll_interval=_number(env, "BRIDGE_TWIN_POLL_S", 0.5),
            faults=_faults(env),
        )

    def warped_name(self, name: str) -> str:
        return self.warped_task_name.format(name=name)

    def clean_name(self, name: str) -> str:
        return self.clean_task_name.format(name=name)

    def secrets(self) -> list[str]:
        """Values that must never reach the log."""
        return [s for s in (self.cvat_password, self.webhook_secret) if s]

    def describe(self) -> str:
        return (
            f"CVAT_URL={self.cvat_url} user={self.cvat_user or '(unset)'} "
            f"password={'(set)' if self.cvat_password else '(unset)'} "
            f"webhook_secret={'(set)' if self.webhook_secret else '(empty)'} "
            f"nuclio={self.nuclio_host}:{self.nuclio_port} cache_dir={self.cache_dir} "
            f"auto_ann_timeout={self.auto_ann_timeout:g}s; twin: "
            f"health_methods={','.join(self.health_methods)} "
            f"refuse_unsigned={self.refuse_unsigned} "
            f"ping_checks_target={self.ping_checks_target} detect_via={self.detect_via} "
            f"function_url={self.function_url} shape_source={self.shape_source} "
            f"detect_cleanup={self.detect_cleanup} warped_task_name={self.warped_task_name} "
            f"clean_task_name={self.clean_task_name} warp_size={self.warp_size}"
            + (f" FAULTS={','.join(self.faults)}" if self.faults else "")
        )
