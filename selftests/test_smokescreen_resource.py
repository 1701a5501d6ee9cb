"""The Smokescreen resource's diagnoses from recorded inputs, without Docker: a container's
inspect record (its SMOKESCREEN_OPTS, extra_hosts) and probe answers built by hand, as the
twin gives them under each gateway fault. Each diagnosis must carry the tokens the fault
table expects of the check that reports it, so the table and the resource cannot part."""

from __future__ import annotations

import pytest

from criobe_verify.probe_answers import Listening, Process, ProcessList, ProxyAnswer, Resolution
from criobe_verify.profile import Gateway
from criobe_verify.resources import Smokescreen
from selftests.fault_table import FAULTS, tokens

GATEWAY_IP = "172.17.0.1"
DB_IP = "172.23.0.3"
SUBNET = "172.23.0.0/16"
DENIED = (
    "Egress proxying is denied to host 'bridge.gateway:8000': The destination address "
    "(172.17.0.1) was denied by rule 'Deny: Private Range'. destination address was denied "
    "by rule, see error."
)


class RecordedContainer:
    """What the resource reads of a container: its inspect record and its log."""

    def __init__(self, name: str, opts: str | None, extra_hosts=None, log: str = ""):
        env = ["PATH=/usr/bin"] + ([f"SMOKESCREEN_OPTS={opts}"] if opts is not None else [])
        self.name, self.id, self.status = name, f"id-{name}", "running"
        self.attrs = {
            "Config": {"Env": env},
            "HostConfig": {
                "ExtraHosts": ["bridge.gateway:host-gateway"]
                if extra_hosts is None
                else extra_hosts
            },
        }
        self._log = log

    def logs(self, tail: int) -> bytes:
        return self._log.encode()


def smokescreen(name: str = "cvat_server", opts: str | None = "--allow-address=172.17.0.1",
                **container) -> Smokescreen:  # fmt: skip
    return Smokescreen(
        name,
        lambda: RecordedContainer(name, opts, **container),
        None,  # the diagnoses read no probe: the answers are given
        Gateway(),
        gateway_ip=lambda: GATEWAY_IP,
        stack_ip=lambda target: {"cvat_db": DB_IP}[target],
    )


def expected_tokens(fault_id: str, check: str, param: str) -> tuple[str, ...]:
    fault = next(f for f in FAULTS if f.id == fault_id)
    return tokens(fault.fails[f"{check}[{param}]"])


def assert_carries(diagnosis, fault_id: str, check: str) -> None:
    text = str(diagnosis)
    missing = [t for t in expected_tokens(fault_id, check, diagnosis.subject) if t not in text]
    assert not missing, f"{fault_id}: {missing} not in {text}"


NOT_LISTENING = Listening.failed("[Errno 111] Connection refused", "exec")
NO_PROCESS = ProcessList(via="exec")


def test_a_hostname_in_allow_address_is_fatal_and_says_so():
    s = smokescreen(
        opts="--allow-address=bridge.gateway",
        log='{"level":"fatal","msg":"address must be in the form ip[:port], got bridge.gateway"}',
    )
    d = s.why_not_listening(NO_PROCESS, NOT_LISTENING)
    assert_carries(d, "allow-address-hostname", "gateway/smokescreen-listening")
    assert d.fix == f'SMOKESCREEN_OPTS: "--allow-address={GATEWAY_IP}" in ' + (
        "bridge/docker-compose.bridge.yml, then docker compose up -d"
    )
    assert "its log says:" in d.why


def test_a_stopped_smokescreen_is_told_from_a_bad_option():
    d = smokescreen().why_not_listening(NO_PROCESS, NOT_LISTENING)
    assert_carries(d, "smokescreen-stopped-cvat-server", "gateway/smokescreen-listening")
    assert d.fix == "docker restart cvat_server" and d.observed == "no smokescreen process"


def test_a_smokescreen_on_another_port_is_alive_but_not_accepting():
    opts = "--allow-address=172.17.0.1 --listen-port=4751"
    argv = ("/usr/local/bin/smokescreen", "--listen-ip=127.0.0.1", "--allow-address=172.17.0.1",
            "--listen-port=4751")  # fmt: skip
    alive = ProcessList(processes=(Process(31, argv, "S"),), via="exec")
    d = smokescreen(opts=opts).why_not_listening(alive, NOT_LISTENING)
    assert_carries(d, "smokescreen-on-another-port", "gateway/smokescreen-listening")
    assert "Connection refused" in d.why


def test_unset_options_name_the_supervisord_expansion():
    d = smokescreen(opts=None).why_not_listening(NO_PROCESS, NOT_LISTENING)
    assert "cannot expand %(ENV_SMOKESCREEN_OPTS)s" in d.why
    assert d.fix.startswith('SMOKESCREEN_OPTS: "--allow-address=172.17.0.1"')


@pytest.mark.parametrize(
    "name, extra_hosts",
    [("cvat_server", ["host.docker.internal:host-gateway"]), ("cvat_worker_webhooks", [])],
)
def test_a_missing_extra_hosts_mapping_is_named(name, extra_hosts):
    unresolved = Resolution.failed("[Errno -2] Name or service not known", "exec")
    d = smokescreen(name, extra_hosts=extra_hosts).why_gateway_misresolved(unresolved)
    assert_carries(d, f"extra-hosts-removed-{name}", "gateway/bridge-gateway-resolves")
    assert d.what == "bridge.gateway resolves to nothing ([Errno -2] Name or service not known)"


def test_a_docker_desktop_address_is_named_as_another_platforms_gateway():
    elsewhere = Resolution(addresses=("192.168.65.254",), via="exec")
    d = smokescreen().why_gateway_misresolved(elsewhere)
    assert "192.168.65.254 is the host gateway of Docker Desktop on Windows/WSL2" in d.why
    assert d.why.startswith("extra_hosts maps 'bridge.gateway:host-gateway'")


@pytest.mark.parametrize(
    "fault_id, opts",
    [
        ("allow-address-wrong-port", "--allow-address=172.17.0.1:9999"),
        ("docker-desktop-gateway-on-linux", "--allow-address=192.168.65.254"),
    ],
)
def test_a_refused_bridge_is_explained_by_the_options(fault_id, opts):
    refused = ProxyAnswer(status=407, reason="Proxy Authentication Required",
                          error_header=DENIED, body=DENIED + "\n", via="exec")  # fmt: skip
    for name in ("cvat_server", "cvat_worker_webhooks"):
        d = smokescreen(name, opts=opts).why_bridge_refused(refused)
        assert_carries(d, fault_id, "gateway/bridge-answers-through-smokescreen")


def test_empty_options_on_the_webhooks_worker_deny_the_gateway():
    refused = ProxyAnswer(status=407, error_header=DENIED, body=DENIED, via="exec")
    d = smokescreen("cvat_worker_webhooks", opts="").why_bridge_refused(refused)
    assert_carries(
        d, "webhooks-worker-allowance-missing", "gateway/bridge-answers-through-smokescreen"
    )
    assert d.consequence == "every webhook event delivery to the bridge fails"


def test_a_bridge_that_does_not_answer_behind_an_open_proxy_is_told_apart():
    bad_gateway = ProxyAnswer(status=502, error_header="Failed to connect", via="exec")
    d = smokescreen().why_bridge_refused(bad_gateway)
    assert "nothing answered at 172.17.0.1:8000" in d.why
    failed = smokescreen().why_bridge_refused(ProxyAnswer.failed("ConnectionRefusedError: x"))
    assert failed.what.endswith("to bridge.gateway:8000 failed")
    assert failed.observed == "ConnectionRefusedError: x"


@pytest.mark.parametrize("name", ["cvat_server", "cvat_worker_webhooks"])
def test_an_allowed_stack_range_is_named_as_ssrf_protection_off(name):
    s = smokescreen(name, opts=f"--allow-address=172.17.0.1 --allow-range={SUBNET}")
    through = ProxyAnswer(status=502, error_header=None, body="", via="exec")
    d = s.why_private_answered(through)
    assert_carries(d, f"ssrf-protection-off-{name}", "gateway/smokescreen-refuses-private-address")
    assert f"--allow-range={SUBNET} covers the stack network" in d.why
    assert (
        d.what
        == f"Smokescreen (127.0.0.1:4750) answered a request to http://{DB_IP}:5432/ (cvat_db)"
    )


def test_refusal_as_private_is_smokescreens_own_407():
    s = smokescreen()
    assert s.refuses_as_private(ProxyAnswer(status=407, error_header=DENIED.replace("bridge.gateway:8000", f"{DB_IP}:5432")))  # fmt: skip
    assert not s.refuses_as_private(ProxyAnswer(status=407, error_header="Deny: Not Global Unicast"))  # fmt: skip
    assert not s.refuses_as_private(ProxyAnswer.failed("timed out after 15 s"))
