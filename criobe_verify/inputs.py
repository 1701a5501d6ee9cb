"""Everything a run is given, validated before anything runs: the suite's options, the
environment variables it reads, the profile and its waivers, the files it is pointed at. The
first bad one raises InputError, one line naming it; nothing has been created by then.

    >>> options = {"--profile": "profiles/twin.toml", "--layer": ["host,ports"]}
    >>> validate(options.get, environ={}).layers
    ('host', 'ports')
    >>> validate({"--stack": "atach"}.get, environ={})
    Traceback (most recent call last):
    ...
    criobe_verify.bad_input.InputError: --stack atach: unknown mode; expected one of attach, up, twin; fix: did you mean attach?

What is read where: options, DOCKER_HOST (and docker's DOCKER_TLS_VERIFY, DOCKER_CERT_PATH),
CRIOBE_STACK_HOST, and with --stack twin BASE_IMAGE and EXTRA_CA_CERT, here; the profile's
keys in criobe_verify/profile.py; its waivers against the checks the suite declares
(criobe_verify/check_catalog.py); files and folders in criobe_verify/input_files.py.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criobe_verify import input_files
from criobe_verify.bad_input import InputError, did_you_mean
from criobe_verify.check_catalog import CheckCatalog
from criobe_verify.docker_endpoint import DockerEndpoint
from criobe_verify.layers import DEFAULT_LAYERS, LAYER_NAMES
from criobe_verify.paths import PROFILES_DIR, inside_installed_package
from criobe_verify.profile import Profile, load_profile
from criobe_verify.waivers import check_waiver_targets

if TYPE_CHECKING:
    from criobe_verify.quadrat import GroundTruth

STACK_MODES = ("attach", "up", "twin")
PHASES = ("preinstall", "installed")
BUDGETS = ("gpu", "cpu")
DEFAULT_STACK_TIMEOUT = 600.0
DEFAULT_LEASE_WAIT = 1800.0  # criobe_verify/lease.py: a whole run of another's, e2e included
# testinfra's backends that need a package of their own, and which.
BACKEND_PACKAGES = {"paramiko": "paramiko", "winrm": "winrm", "salt": "salt", "ansible": "ansible"}

Option = Callable[[str], Any]


@dataclass(frozen=True)
class RunInputs:
    """The run's inputs, once valid."""

    profile: Profile
    layers: tuple[str, ...]
    stack_timeout: float
    docker: DockerEndpoint
    # The lab's photos (--sample-image, repeatable) each with its ground truth; () for the
    # committed synthetic sample.
    samples: tuple[tuple[str, GroundTruth], ...] = ()
    # --require: layers a skip in must fail the run (a CI job that must prove them).
    required: tuple[str, ...] = ()
    # --lease-wait: how long to wait for the runs ahead of this one (criobe_verify/lease.py).
    lease_wait: float = DEFAULT_LEASE_WAIT


def default_profile_path(stack_mode: str) -> Path:
    return PROFILES_DIR / ("twin.toml" if stack_mode == "twin" else "criobe.toml")


def _choice(option: str, value: Any, choices: Sequence[str], what: str) -> None:
    if value not in choices:
        raise InputError(
            f"{option} {value}",
            f"unknown {what}",
            "one of " + ", ".join(choices),
            did_you_mean(str(value), choices) or f"{option} {choices[0]}",
        )


def layers(values: Sequence[str], option: str = "--layer") -> tuple[str, ...]:
    """--layer or --require (repeatable, comma-separated) as layer names, in the order given;
    --layer's default is every layer but the opt-in ones (regression: --baseline adds it).

    >>> layers(["host", "ports,network"])
    ('host', 'ports', 'network')
    >>> layers([], "--require")
    ()
    >>> "regression" in layers([])
    False
    """
    chosen = [name for value in values for name in value.split(",") if name]
    for name in chosen:
        _choice(option, name, LAYER_NAMES, "layer")
    if option == "--layer":
        return tuple(chosen) or DEFAULT_LAYERS
    return tuple(chosen)


def _regression(
    option: Option, chosen: tuple[str, ...], required: tuple[str, ...]
) -> tuple[str, ...]:
    """--baseline DIR: readable as a baseline (or a summary.json) before anything runs, and
    the regression layer added to the layers the run selects (it compares whatever ran)."""
    from criobe_verify.baseline import BaselineInputError, load_run

    value = option("--baseline")
    if value is None:
        for name, given in (("--layer", chosen), ("--require", required)):
            if "regression" in given:
                raise InputError(
                    f"{name} regression",
                    "compares this run with a baseline, and none was given",
                    "--baseline DIR (a folder `criobe-verify baseline DIR` wrote)",
                    "add --baseline DIR, or leave the regression layer out",
                )
        return chosen
    try:
        load_run(value)
    except BaselineInputError as exc:
        raise InputError(f"--baseline {value}", exc.problem, exc.expected, exc.fix) from None
    return chosen if "regression" in chosen else (*chosen, "regression")


def stack_timeout(value: Any, option: str = "--stack-timeout", default: float = 600) -> float:
    """--stack-timeout (or another option in seconds): a positive number.

    >>> stack_timeout("90")
    90.0
    >>> stack_timeout("soon", "--lease-wait", 1800)
    Traceback (most recent call last):
    ...
    criobe_verify.bad_input.InputError: --lease-wait soon: not a number of seconds; expected a positive number of seconds (default 1800); fix: --lease-wait 1800
    >>> stack_timeout("-3", "--lease-wait", 1800)
    Traceback (most recent call last):
    ...
    criobe_verify.bad_input.InputError: --lease-wait -3: not a positive number of seconds; expected a positive number of seconds (default 1800); fix: --lease-wait 1800
    """
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if 0 < seconds < float("inf"):
        return seconds
    if seconds != seconds:  # not a number, or NaN
        problem = "not a number of seconds"
    elif seconds == float("inf"):
        problem = "not a bounded wait"
    else:
        problem = "not a positive number of seconds"
    raise InputError(
        f"{option} {value}",
        problem,
        f"a positive number of seconds (default {default:.0f})",
        f"{option} {default:.0f}",
    )


def _gateway_ip(value: str | None) -> None:
    if value is None:
        return
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise InputError(
            f"--gateway-ip {value}",
            "not an IPv4 address",
            "the address bridge.gateway resolves to, such as 172.17.0.1",
            "leave it out to ask Docker",
        ) from None


def _stack_host(environ: Mapping[str, str]) -> None:
    """CRIOBE_STACK_HOST: a testinfra backend URL, its backend's package installed."""
    from testinfra.backend import BACKENDS

    value = environ.get("CRIOBE_STACK_HOST")
    if value is None:
        return
    expected = "a testinfra backend such as local:// or ssh://gpu-host"
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in BACKENDS:
        close = did_you_mean(scheme, BACKENDS) if sep else ""
        raise InputError(
            f"CRIOBE_STACK_HOST={value}",
            f"unknown backend {scheme!r}" if sep else "no backend (scheme://)",
            f"{expected}; backends: {', '.join(BACKENDS)}",
            close or "unset it for this machine (local://)",
        )
    if scheme != "local" and not re.match(r"[^/?#\s]+", rest):
        raise InputError(
            f"CRIOBE_STACK_HOST={value}", "no host after the backend", expected, f"{scheme}://HOST"
        )
    package = BACKEND_PACKAGES.get(scheme)
    if package and importlib.util.find_spec(package) is None:
        raise InputError(
            f"CRIOBE_STACK_HOST={value}",
            f"the {scheme} backend needs {package}, which is not installed",
            f"{package} importable beside criobe-verify",
            f"pip install {package}, or use ssh:// (the ssh command)",
        )


def _twin_environment(environ: Mapping[str, str]) -> None:
    """What the twin's image builds read from the environment."""
    base = environ.get("BASE_IMAGE")
    if base is not None and not re.fullmatch(r"[a-z0-9][a-z0-9._/:@-]*", base):
        raise InputError(
            f"BASE_IMAGE={base}",
            "not an image reference",
            "an image such as debian:bookworm-slim",
            "unset it for debian:bookworm-slim",
        )
    ca = environ.get("EXTRA_CA_CERT")
    if ca and not re.search(r"-----BEGIN [A-Z ]*CERTIFICATE-----", ca):
        raise InputError(
            "EXTRA_CA_CERT",
            "holds no PEM certificate",
            "the text of the extra CA certificates (-----BEGIN CERTIFICATE-----…), not a path",
            'EXTRA_CA_CERT="$(cat /path/to/ca.crt)", or unset it',
        )


def _outputs(option: Option) -> None:
    for name in ("--summary-json", "htmlpath", "xmlpath"):
        value = option(name)
        if value:
            shown = {"htmlpath": "--html", "xmlpath": "--junitxml"}.get(name, name)
            input_files.writable_output(shown, value)


def _only_with(option: Option, mode: str) -> None:
    """Options that mean something with a stack the suite brings up: given for nothing, they
    would be silently ignored."""
    if option("--stack-dir") and mode != "up":
        raise InputError(
            f"--stack-dir {option('--stack-dir')}",
            f"is read only with --stack up (this run is --stack {mode})",
            "--stack up --stack-dir PATH",
            "add --stack up, or leave --stack-dir out",
        )
    if mode == "up" and not option("--stack-dir"):
        raise InputError(
            "--stack up",
            "needs --stack-dir PATH (the CRIOBE checkout)",
            "--stack up --stack-dir PATH",
            "add --stack-dir, or check a running stack with --stack attach",
        )
    for flag in ("--reuse-running", "--keep-up"):
        if option(flag) and mode == "attach":
            raise InputError(
                flag,
                "means nothing with --stack attach (the suite brings nothing up)",
                "--stack up or --stack twin",
                f"leave {flag} out",
            )


def _listed(value: Any) -> list[str]:
    """A repeatable option's values (one value where a caller passes a single string)."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _samples(option: Option) -> tuple[tuple[str, GroundTruth], ...]:
    images, truth = _listed(option("--sample-image")), _listed(option("--ground-truth"))
    if not images and truth:
        raise InputError(
            "--ground-truth " + ", ".join(truth),
            "given without --sample-image",
            "--sample-image PHOTO --ground-truth COCO_OR_JSON...",
            "add the photo it describes with --sample-image",
        )
    for image in images:
        input_files.sample_image(image)
    if images and not truth:
        raise InputError(
            f"--sample-image {images[0]}",
            "needs --ground-truth (the photo's COCO exports)",
            "--sample-image PHOTO --ground-truth COCO_OR_JSON...",
            "add the corner and grid exports of that photo with --ground-truth",
        )
    if len(images) == 1:
        return ((images[0], input_files.ground_truth(truth, images[0])),)
    return tuple(input_files.ground_truths(truth, images))


TWIN_PROFILE = "twin"


def _golden(option: Option, profile: Profile) -> None:
    if option("--update-golden") and profile.name != TWIN_PROFILE:
        # The repository's golden answers are the twin's functions' on the synthetic sample;
        # a lab's answers on its own photos are its baseline's, kept out of the repository.
        raise InputError(
            "--update-golden",
            f"records the twin's golden answers, and this run's profile is {profile.name!r} "
            f"({profile.path})",
            f"--update-golden only with the twin's profile (profiles/{TWIN_PROFILE}.toml)",
            "record this stack's answers with `criobe-verify baseline DIR` (they stay in DIR "
            "and are compared after an upgrade by `criobe-verify compare`)",
        )
    if option("--update-golden") and inside_installed_package(profile.golden_dir):
        raise InputError(
            "--update-golden",
            f"the golden answers are in the installed package ({profile.golden_dir}), which "
            "an upgrade of criobe-verify would replace",
            "[inference] golden_dir naming a folder of yours",
            f"set [inference] golden_dir in your profile ({profile.path})",
        )


def validate(option: Option, environ: Mapping[str, str], own_checks: bool = False) -> RunInputs:
    """Check every input of a run (`option(name)` gives an option's value, as
    pytest.Config.getoption does); raise InputError for the first bad one.
    own_checks: the session runs a project's own layer-marked checks (its ini says
    `criobe_verify = true`), which waivers may name: those are checked once collected."""
    mode = option("--stack") or "attach"
    _choice("--stack", mode, STACK_MODES, "mode")
    _choice("--phase", option("--phase") or "installed", PHASES, "phase")
    if option("--budgets") is not None:
        _choice("--budgets", option("--budgets"), BUDGETS, "budget")
    chosen = layers(option("--layer") or [])
    required = layers(option("--require") or [], "--require")
    timeout = stack_timeout(option("--stack-timeout") or DEFAULT_STACK_TIMEOUT)
    lease_wait = stack_timeout(
        option("--lease-wait") or DEFAULT_LEASE_WAIT, "--lease-wait", DEFAULT_LEASE_WAIT
    )
    _gateway_ip(option("--gateway-ip"))
    _only_with(option, mode)
    docker = DockerEndpoint.of(environ)
    docker.check()
    _stack_host(environ)
    if mode == "twin":
        _twin_environment(environ)
    profile = load_profile(option("--profile") or default_profile_path(mode))
    if not own_checks:
        check_waiver_targets(
            profile.waivers, CheckCatalog.read(), profile.parameter_names(), str(profile.path)
        )
    _golden(option, profile)
    if mode == "up":
        input_files.stack_checkout(option("--stack-dir"))
    samples = _samples(option)
    chosen = _regression(option, chosen, required)
    _outputs(option)
    return RunInputs(profile, chosen, timeout, docker, samples, required, lease_wait)
