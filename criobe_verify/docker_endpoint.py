"""Where this run reaches the Docker engine: DOCKER_HOST (with docker's DOCKER_TLS_VERIFY and
DOCKER_CERT_PATH), or the default socket. Its syntax is checked before anything runs; when the
engine does not answer, one diagnosis names the endpoint actually used and the fix, instead of
the client library's five-deep exception chain.

    >>> endpoint = DockerEndpoint.of({"DOCKER_HOST": "tcp://127.0.0.1:1"})
    >>> endpoint.shown
    'tcp://127.0.0.1:1 (DOCKER_HOST)'
    >>> print(endpoint.connect(timeout=5).unreachable)  # doctest: +NORMALIZE_WHITESPACE
    Docker engine: not reachable at tcp://127.0.0.1:1 (DOCKER_HOST): nothing listens there
    (connection refused) — nothing that needs the engine (the stack's checks, a bring-up) can
    run. Fix: start dockerd listening there, or point DOCKER_HOST at the engine you mean (unset
    it for the local socket /var/run/docker.sock)
    >>> DockerEndpoint.of({}).shown
    'unix:///var/run/docker.sock (the default socket; DOCKER_HOST is unset)'
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker

from criobe_verify.bad_input import InputError
from criobe_verify.diagnosis import Diagnosis, fail
from criobe_verify.redact import REDACTOR

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
SCHEMES = ("unix://", "tcp://", "ssh://", "npipe://")
TLS_FILES = ("ca.pem", "cert.pem", "key.pem")


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception, what caused it, and what it wraps in its args (urllib3 keeps the socket's
    error there), outermost first: the first cause recognised from the end is the reason."""
    found: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop(0)
        if any(e is f for f in found):
            continue
        found.append(e)
        todo += [x for x in (e.__cause__, e.__context__, *e.args) if isinstance(x, BaseException)]
    return found


@dataclass(frozen=True)
class EngineConnection:
    """The engine as this process found it: a client, or the diagnosis of why there is none."""

    endpoint: DockerEndpoint
    client: docker.DockerClient | None = None
    unreachable: Diagnosis | None = None

    @property
    def answers(self) -> bool:
        return self.client is not None

    def client_or_fail(self) -> docker.DockerClient:
        """The client; a check that needs one fails with the diagnosis when there is none."""
        if self.client is None:
            fail(self.unreachable or self.endpoint.why_unreachable(RuntimeError("no client")))
        return self.client


@dataclass(frozen=True)
class DockerEndpoint:
    url: str  # what docker's client connects to
    from_environment: bool  # DOCKER_HOST set (else the default socket)
    # docker's client reads its TLS settings from here; never shown (it may hold secrets).
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, environ: Mapping[str, str]) -> DockerEndpoint:
        value = environ.get("DOCKER_HOST", "")
        return cls(value or DEFAULT_SOCKET, bool(value), dict(environ))

    @property
    def shown(self) -> str:
        """The endpoint as a message names it (a password in it redacted)."""
        source = (
            "DOCKER_HOST" if self.from_environment else "the default socket; DOCKER_HOST is unset"
        )
        return REDACTOR(f"{self.url} ({source})")

    def check(self) -> None:
        """Raise InputError when docker's client could not even try this endpoint."""
        if not self.from_environment:
            return
        given = f"DOCKER_HOST={self.url}"
        expected = "unix:///path/to/docker.sock, tcp://HOST:PORT, ssh://[USER@]HOST or npipe://"
        if not self.url.startswith(SCHEMES):
            raise InputError(
                given,
                "not an address docker can connect to",
                expected,
                "write the scheme (unix:///var/run/docker.sock), or unset it for the local socket",
            )
        if "@" in self.url.split("://", 1)[1] and not self.url.startswith("ssh://"):
            raise InputError(
                given,
                "carries a user name (and password) docker's client cannot use",
                expected,
                "drop user:password@; a TLS engine takes DOCKER_TLS_VERIFY and DOCKER_CERT_PATH",
            )
        try:
            docker.utils.parse_host(
                self.url, False, tls=bool(self.environ.get("DOCKER_TLS_VERIFY"))
            )
        except (docker.errors.DockerException, ValueError) as exc:
            raise InputError(given, str(exc).rstrip("."), expected, "correct DOCKER_HOST") from None
        if self.url.startswith("ssh://") and importlib.util.find_spec("paramiko") is None:
            raise InputError(
                given,
                "an ssh:// engine needs paramiko, which is not installed",
                "paramiko importable beside criobe-verify",
                "pip install paramiko (in criobe-verify's environment)",
            )
        try:
            docker.utils.kwargs_from_env(environment=self.environ)
        except docker.errors.DockerException:
            folder = self.environ.get("DOCKER_CERT_PATH") or "~/.docker"
            missing = [f for f in TLS_FILES if not (Path(folder).expanduser() / f).is_file()]
            raise InputError(
                f"DOCKER_CERT_PATH={folder}",
                "DOCKER_TLS_VERIFY is set, but "
                + (f"{', '.join(missing)} missing there" if missing else "its files are unusable"),
                f"a folder with {', '.join(TLS_FILES)}",
                "point DOCKER_CERT_PATH at the client certificates, or unset DOCKER_TLS_VERIFY",
            ) from None

    def connect(self, timeout: float = 30) -> EngineConnection:
        """A client that has answered a ping, or the diagnosis of why there is none."""
        try:
            client = docker.DockerClient(
                **docker.utils.kwargs_from_env(environment=self.environ), timeout=timeout
            )
            client.ping()
        except Exception as exc:  # DockerException, or a requests error it lets through
            return EngineConnection(self, unreachable=self.why_unreachable(exc))
        return EngineConnection(self, client=client)

    def _reason(self, exc: BaseException) -> tuple[str, str]:
        """What went wrong, said plainly, and its fix, from the innermost known cause."""
        causes = _causes(exc)
        elsewhere = (
            "point DOCKER_HOST at the engine you mean (unset it for the local socket "
            "/var/run/docker.sock)"
            if self.from_environment
            else "set DOCKER_HOST to the engine you mean"
        )
        for cause in reversed(causes):
            if isinstance(cause, FileNotFoundError):
                return (
                    "no socket there",
                    f"start the Docker engine (systemctl start docker), or {elsewhere}",
                )
            if isinstance(cause, ConnectionRefusedError):
                return (
                    "nothing listens there (connection refused)",
                    f"start dockerd listening there, or {elsewhere}",
                )
            if isinstance(cause, PermissionError):
                return (
                    "permission denied on the socket",
                    "run as root or as a member of the docker group (usermod -aG docker USER, "
                    "then log in again)",
                )
            if isinstance(cause, socket.gaierror):
                return "its host name does not resolve", "correct the host in DOCKER_HOST"
            if isinstance(cause, TimeoutError) or "Timeout" in type(cause).__name__:
                return "no answer in time", f"check the network path to it, or {elsewhere}"
        innermost = str(causes[-1]).strip() or type(causes[-1]).__name__
        return innermost[:200], f"check that the engine runs there, or {elsewhere}"

    def why_unreachable(self, exc: BaseException) -> Diagnosis:
        observed, fix = self._reason(exc)
        return Diagnosis(
            "Docker engine",
            f"not reachable at {self.shown}",
            observed=observed,
            consequence="nothing that needs the engine (the stack's checks, a bring-up) can run",
            fix=fix,
        )
