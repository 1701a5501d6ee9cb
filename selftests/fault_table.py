"""The fault table: for every check of the suite, a fault injected into the twin that makes
exactly that check fail, with a fragment of the message that must name the fault.

    fault id | how to inject it | the test ids that must fail (+ message fragment) | how to revert

Every collected suite test id must be named by at least one fault (test_fault_table.py), and
selftests/test_faults.py injects each fault into the running twin, runs the suite and checks
that exactly the named tests fail (higher layers may only skip, naming a failed one).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from criobe_verify.profile import load_profile
from selftests.twin import TWIN_PROFILE, Twin, fake_docker_without_compose

H = "tests/test_host.py::"
C = "tests/test_containers.py::"
P = "tests/test_ports.py::"
N = "tests/test_network.py::"
G = "tests/test_gateway.py::"
S = "tests/test_services.py::"
W = "tests/test_webhooks.py::"


@dataclass(frozen=True)
class Fault:
    id: str
    what: str
    fails: Mapping[str, str]
    inject: Callable[[Twin], None] = lambda twin: None
    revert: Callable[[Twin], None] = lambda twin: None
    phase: str = "installed"
    # How the suite is run while the fault is in: extra environment, or an edited profile.
    suite_env: Callable[[Twin], Mapping[str, str]] = lambda twin: {}
    profile_edit: Callable[[str], str] | None = None
    # A foreign program holding this host port while the suite runs (preinstall faults).
    hold_port: int | None = None
    # Run only these layers: a higher layer's own diagnosis, without the lower layer that
    # would otherwise catch the same fault first and skip it.
    layers: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())


def _overlay(services: str) -> str:
    return "services:\n" + services


def _recreate(service: str, overlay: str) -> Callable[[Twin], None]:
    return lambda twin: twin.recreate(service, overlay=_overlay(overlay))


def _restore(*services: str) -> Callable[[Twin], None]:
    return lambda twin: twin.restore(*services)


def _no_bridge_overlay(twin: Twin) -> None:
    twin.remove("bridge")
    twin.stack_without("bridge/docker-compose.bridge.yml").run(
        "up", "-d", "--no-deps", "cvat_server", "cvat_worker_webhooks"
    )


def _tag_wrong_ui(twin: Twin) -> None:
    image = twin.docker.images.get("criobe-twin/cvat-ui:v2.29.0")
    image.tag("criobe-twin/cvat-ui", "v2.28.0")
    twin.recreate(
        "cvat_ui", overlay=_overlay("  cvat_ui:\n    image: criobe-twin/cvat-ui:v2.28.0\n")
    )


def _untag_wrong_ui(twin: Twin) -> None:
    twin.restore("cvat_ui")
    twin.docker.images.remove("criobe-twin/cvat-ui:v2.28.0")


def _other_network(twin: Twin) -> None:
    net = twin.docker.networks.create("criobe_fault_elsewhere", driver="bridge")
    net.connect("bridge")
    twin.docker.networks.get("cvat_cvat").disconnect("bridge")


def _other_network_revert(twin: Twin) -> None:
    twin.restore("bridge")
    twin.docker.networks.get("criobe_fault_elsewhere").remove()


def _drop_alias(twin: Twin) -> None:
    net = twin.docker.networks.get("cvat_cvat")
    net.disconnect("cvat_server")
    net.connect("cvat_server")  # back on the network, without the cvat-server alias


def _break_resolver(twin: Twin) -> None:
    # 127.0.0.1:53 inside the bridge: nothing answers, and no packet leaves the container.
    twin.exec("bridge", "sh", "-c", "echo 'nameserver 127.0.0.1' > /etc/resolv.conf")


def _other_project(twin: Twin) -> None:
    twin.stack().down()
    stack = twin.stack()
    stack.project = "criobe"
    stack.up_like_the_guide()


def _other_project_revert(twin: Twin) -> None:
    stack = twin.stack()
    stack.project = "criobe"
    stack.down(volumes=True)  # only the volumes this fault created under project criobe
    twin.restore()


def _smokescreen_opts(opts_by_service: Mapping[str, str]) -> Callable[[Twin], None]:
    """Recreate services with another SMOKESCREEN_OPTS, as an edited bridge overlay would."""

    def inject(twin: Twin) -> None:
        services = "".join(
            f"  {svc}:\n    environment:\n      SMOKESCREEN_OPTS: {opts!r}\n"
            for svc, opts in opts_by_service.items()
        )
        twin.recreate(*opts_by_service, overlay=_overlay(services))

    return inject


def _allow_stack_network(twin: Twin, service: str) -> None:
    subnet = twin.docker.networks.get("cvat_cvat").attrs["IPAM"]["Config"][0]["Subnet"]
    _smokescreen_opts({service: f"--allow-address=172.17.0.1 --allow-range={subnet}"})(twin)


REGULAR_USER = ("criobe-fault-regular", "Regular-user-pass-7431")


def _bridge_as_regular_user(twin: Twin) -> None:
    """Register a non-admin CVAT user and point the bridge's credentials at it."""
    import httpx

    user, password = REGULAR_USER
    r = httpx.post(
        "http://localhost:8080/api/auth/register",
        headers={"Host": "localhost"},
        json={"username": user, "email": f"{user}@example.com", "password1": password,
              "password2": password, "first_name": "", "last_name": ""},
        timeout=30,
    )  # fmt: skip
    assert r.status_code in (201, 400), r.text
    twin.recreate(
        "bridge",
        overlay=_overlay(
            f'  bridge:\n    environment:\n      CVAT_USER: "{user}"\n      CVAT_PWD: "{password}"\n'
        ),
    )


def _no_docker_socket(twin: Twin) -> Mapping[str, str]:
    return {"DOCKER_HOST": "unix:///run/criobe-verify-no-such-docker.sock"}


def _no_compose(twin: Twin) -> Mapping[str, str]:
    directory = Path(tempfile.mkdtemp(prefix="criobe-nocompose-", dir=twin.workdir))
    return {"PATH": fake_docker_without_compose(directory)}


def _preinstall_faults() -> list[Fault]:
    profile = load_profile(TWIN_PROFILE)
    return [
        Fault(
            id=f"port-{p.port}-held-before-install",
            what=f"a foreign program listens on {p.port} before the stack is installed",
            phase="preinstall",
            hold_port=p.port,
            fails={
                f"{H}test_stack_port_is_free_before_install[{p.port}]": f"host port {p.port} (for {p.container}) is already held"
            },
        )
        for p in profile.ports
        if p.free_before_install
    ]


FAULTS: list[Fault] = [
    *_preinstall_faults(),
    # --- host ---
    Fault(
        id="docker-socket-missing",
        what="DOCKER_HOST points at a socket that does not exist",
        suite_env=_no_docker_socket,
        fails={
            f"{H}test_docker_engine_answers": "Docker engine: not reachable",
            f"{H}test_docker_root_has_free_disk": "Docker engine: not reachable",
            **{
                f"{H}test_stack_port_is_held_by_its_container[{port}]": "Docker engine: not reachable"
                for port in (8090, 8080, 8070, 8000)
            },
        },
    ),
    Fault(
        id="compose-v2-missing",
        what="the docker CLI has no compose plugin",
        suite_env=_no_compose,
        fails={f"{H}test_compose_v2_is_available": "`docker compose version` failed"},
    ),
    Fault(
        id="disk-below-threshold",
        what="the profile needs more free disk than Docker's root has",
        profile_edit=lambda t: t.replace("disk_free_gb_min = 5", "disk_free_gb_min = 100000"),
        fails={f"{H}test_docker_root_has_free_disk": "expected ≥ 100000 GB"},
    ),
    Fault(
        id="traefik-ports-unpublished",
        what="traefik publishes 8081 instead of 8080 and not 8090",
        inject=_recreate("traefik", '  traefik:\n    ports: !override ["127.0.0.1:8081:8080"]\n'),
        revert=_restore("traefik"),
        fails={
            f"{H}test_stack_port_is_held_by_its_container[8080]": "expected published by container traefik",
            f"{H}test_stack_port_is_held_by_its_container[8090]": "expected published by container traefik",
        },
    ),
    Fault(
        id="serverless-overlay-left-out",
        what="the nuclio container is missing (components/serverless/docker-compose.serverless.yml left out)",
        inject=lambda twin: twin.remove("nuclio"),
        revert=_restore(),
        fails={
            f"{H}test_stack_port_is_held_by_its_container[8070]": "docker-compose.serverless.yml"
        },
    ),
    Fault(
        id="bridge-overlay-left-out",
        what="the stack started without bridge/docker-compose.bridge.yml",
        inject=_no_bridge_overlay,
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={
            f"{H}test_stack_port_is_held_by_its_container[8000]": "bridge/docker-compose.bridge.yml"
        },
    ),
    # --- containers ---
    Fault(
        id="container-stopped",
        what="cvat_ui stopped",
        inject=lambda twin: twin.container("cvat_ui").stop(timeout=5),
        revert=_restore("cvat_ui"),
        fails={f"{C}test_containers_are_running": "cvat_ui: status 'exited'"},
    ),
    Fault(
        id="container-removed",
        what="cvat_worker_export removed",
        inject=lambda twin: twin.remove("cvat_worker_export"),
        revert=_restore(),
        fails={f"{C}test_expected_containers_exist": "cvat_worker_export: no such container"},
    ),
    Fault(
        id="crash-loop",
        what="cvat_opa exits at once and restarts forever",
        inject=_recreate(
            "cvat_opa",
            '  cvat_opa:\n    command: ["false"]\n    entrypoint: ["/bin/sh", "-c", "exit 3"]\n',
        ),
        revert=_restore("cvat_opa"),
        fails={f"{C}test_no_container_is_restarting": "cvat_opa: restarting"},
    ),
    Fault(
        id="nuclio-unhealthy",
        what="the dashboard's readiness probe fails",
        inject=_recreate(
            "nuclio",
            '  nuclio:\n    healthcheck:\n      test: ["CMD-SHELL", "curl -sf http://127.0.0.1:8099/ready"]\n'
            "      interval: 1s\n      retries: 2\n      start_period: 0s\n",
        ),
        revert=_restore("nuclio"),
        fails={f"{C}test_containers_with_healthcheck_are_healthy": "nuclio: health 'unhealthy'"},
    ),
    Fault(
        id="wrong-image-tag",
        what="cvat_ui runs a v2.28.0 image",
        inject=_tag_wrong_ui,
        revert=_untag_wrong_ui,
        fails={
            f"{C}test_container_images_match_profile": "cvat_ui: image 'criobe-twin/cvat-ui:v2.28.0', expected 'criobe-twin/cvat-ui:v2.29.0'"
        },
    ),
    Fault(
        id="restart-policy-no",
        what='cvat_ui has restart: "no"',
        inject=_recreate("cvat_ui", '  cvat_ui:\n    restart: "no"\n'),
        revert=_restore("cvat_ui"),
        fails={
            f"{C}test_container_restart_policies_match_profile": "cvat_ui: restart policy 'no', expected 'always'"
        },
    ),
    # --- ports ---
    Fault(
        id="ui-index-missing",
        what="cvat_ui serves no index page",
        inject=lambda twin: twin.exec(
            "cvat_ui",
            "sh",
            "-c",
            "rm -f /usr/share/nginx/html/index.html /var/www/html/index*.html",
        ),
        revert=_restore("cvat_ui"),
        fails={
            f"{P}test_cvat_ui_answers_head_through_traefik": "expected 200 text/html from cvat_ui"
        },
    ),
    Fault(
        id="allowed-hosts-without-localhost",
        what="cvat_server's ALLOWED_HOSTS leaves out localhost",
        inject=_recreate(
            "cvat_server", '  cvat_server:\n    environment:\n      ALLOWED_HOSTS: "cvat-server"\n'
        ),
        revert=_restore("cvat_server"),
        fails={f"{P}test_cvat_api_answers_about_through_traefik": "400 is Django's DisallowedHost"},
    ),
    Fault(
        id="nuclio-port-mismapped",
        what="host 8070 is mapped to a container port where nothing listens",
        inject=_recreate("nuclio", '  nuclio:\n    ports: !override ["127.0.0.1:8070:8071"]\n'),
        revert=_restore("nuclio"),
        fails={
            f"{P}test_nuclio_dashboard_answers_api_versions": "nuclio (:8070): GET http://localhost:8070/api/versions"
        },
    ),
    Fault(
        id="bridge-port-mismapped",
        what="host 8000 is mapped to a bridge port where nothing listens",
        inject=_recreate("bridge", '  bridge:\n    ports: !override ["8000:8001"]\n'),
        revert=_restore("bridge"),
        fails={
            f"{P}test_bridge_answers_health": "bridge (:8000): GET http://localhost:8000/health",
            f"{P}test_bridge_port_is_reachable_at_docker_gateway": "every webhook fails",
        },
    ),
    Fault(
        id="bridge-on-loopback-only",
        what="bridge published as 127.0.0.1:8000:8000",
        inject=_recreate("bridge", '  bridge:\n    ports: !override ["127.0.0.1:8000:8000"]\n'),
        revert=_restore("bridge"),
        fails={
            f"{P}test_bridge_port_is_reachable_at_docker_gateway": "the port is bound to 127.0.0.1 only"
        },
    ),
    *[
        Fault(
            id=f"{service}-published-publicly",
            what=f"{service} publishes {port} on 0.0.0.0",
            inject=_recreate(service, f"  {service}:\n    ports: {ports}\n"),
            revert=_restore(service),
            fails={
                f"{P}test_internal_port_is_not_published_on_public_interface[{port}]": f"{service} publishes {port}/tcp on 0.0.0.0:{port}"
            },
        )
        for service, port, ports in [
            ("cvat_db", 5432, '["5432:5432"]'),
            ("cvat_redis_inmem", 6379, '["6379:6379"]'),
            ("cvat_redis_ondisk", 6666, '["6666:6666"]'),
            ("nuclio", 8070, '!override ["8070:8070"]'),
        ]
    ],
    # --- network ---
    Fault(
        id="container-on-another-network-only",
        what="bridge moved from cvat_cvat to another network",
        inject=_other_network,
        revert=_other_network_revert,
        fails={
            f"{N}test_stack_containers_are_on_stack_network": "bridge: on criobe_fault_elsewhere, expected cvat_cvat",
            f"{N}test_containers_resolve_each_other": "bridge: `getent hosts cvat-server` failed",
        },
    ),
    Fault(
        id="cvat-server-alias-missing",
        what="cvat_server reconnected to cvat_cvat without its alias",
        inject=_drop_alias,
        revert=_restore("cvat_server"),
        fails={
            f"{N}test_network_aliases_are_set": "cvat_server: alias 'cvat-server' missing on cvat_cvat",
            f"{N}test_containers_resolve_each_other": "bridge: `getent hosts cvat-server` failed",
        },
    ),
    Fault(
        id="bridge-resolver-broken",
        what="the bridge's /etc/resolv.conf points at a dead resolver",
        inject=_break_resolver,
        revert=_restore("bridge"),
        fails={
            f"{N}test_containers_resolve_each_other": "bridge: `getent hosts cvat-server` failed"
        },
    ),
    Fault(
        id="wrong-compose-project",
        what="the stack started as compose project 'criobe' (network criobe_cvat)",
        inject=_other_project,
        revert=_other_project_revert,
        fails={
            f"{N}test_stack_network_exists": "network cvat_cvat: does not exist",
            f"{N}test_stack_containers_are_on_stack_network": "expected cvat_cvat",
            f"{N}test_network_aliases_are_set": "alias 'cvat-server' missing on cvat_cvat",
            f"{N}test_containers_resolve_each_other": "network cvat_cvat missing",
        },
        tags=("slow",),
    ),
    # --- gateway ---
    Fault(
        id="webhooks-worker-allowance-missing",
        what="SMOKESCREEN_OPTS empty on cvat_worker_webhooks only",
        inject=_smokescreen_opts({"cvat_worker_webhooks": ""}),
        revert=_restore("cvat_worker_webhooks"),
        fails={
            f"{G}test_bridge_answers_through_smokescreen[cvat_worker_webhooks]": "cvat_worker_webhooks: a request through Smokescreen (127.0.0.1:4750) to bridge.gateway:8000 was refused: 407 \"Egress proxying is denied to host 'bridge.gateway:8000': The destination address (172.17.0.1) was denied by rule 'Deny: Private Range'",
        },
    ),
    Fault(
        id="allow-address-hostname",
        what="SMOKESCREEN_OPTS=--allow-address=bridge.gateway (Smokescreen refuses to start)",
        inject=_smokescreen_opts(
            {s: "--allow-address=bridge.gateway" for s in ("cvat_server", "cvat_worker_webhooks")}
        ),
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={
            f"{G}test_smokescreen_is_listening[{s}]": "refuses to start on it: 'address must be in the form ip[:port], got bridge.gateway'"
            for s in ("cvat_server", "cvat_worker_webhooks")
        },
    ),
    Fault(
        id="allow-address-wrong-port",
        what="SMOKESCREEN_OPTS=--allow-address=172.17.0.1:9999",
        inject=_smokescreen_opts(
            {s: "--allow-address=172.17.0.1:9999" for s in ("cvat_server", "cvat_worker_webhooks")}
        ),
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={
            f"{G}test_bridge_answers_through_smokescreen[{s}]": "allows 172.17.0.1 on port 9999 only, but the bridge listens on 8000"
            for s in ("cvat_server", "cvat_worker_webhooks")
        },
    ),
    Fault(
        id="docker-desktop-gateway-on-linux",
        what="SMOKESCREEN_OPTS allows only Docker Desktop's gateway on a Linux host",
        inject=_smokescreen_opts(
            {s: "--allow-address=192.168.65.254" for s in ("cvat_server", "cvat_worker_webhooks")}
        ),
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={
            f"{G}test_bridge_answers_through_smokescreen[{s}]": "allows 192.168.65.254, the gateway of Docker Desktop on Windows/WSL2, but on this platform bridge.gateway is 172.17.0.1"
            for s in ("cvat_server", "cvat_worker_webhooks")
        },
    ),
    *[
        Fault(
            id=f"extra-hosts-removed-{svc}",
            what=f"{svc} without the bridge.gateway:host-gateway mapping",
            inject=_recreate(svc, f"  {svc}:\n    extra_hosts: {keep}\n"),
            revert=_restore(svc),
            fails={
                f"{G}test_bridge_gateway_resolves_to_platform_gateway[{svc}]": "extra_hosts has no bridge.gateway entry",
            },
        )
        for svc, keep in [
            ("cvat_server", '!override ["host.docker.internal:host-gateway"]'),
            ("cvat_worker_webhooks", "!reset []"),
        ]
    ],
    Fault(
        id="smokescreen-killed-cvat-server",
        what="the Smokescreen process in cvat_server stopped (SIGTERM: it exits 0, not restarted)",
        inject=lambda twin: twin.exec(
            "cvat_server", "pkill", "-TERM", "-f", "/usr/local/bin/smokescreen"
        ),
        revert=_restore("cvat_server"),
        fails={
            f"{G}test_smokescreen_is_listening[cvat_server]": "no smokescreen process): SMOKESCREEN_OPTS '--allow-address=172.17.0.1' is valid, so the process was stopped or crashed",
        },
    ),
    *[
        Fault(
            id=f"ssrf-protection-off-{svc}",
            what=f"{svc}'s Smokescreen allows the whole cvat_cvat range",
            inject=lambda twin, svc=svc: _allow_stack_network(twin, svc),
            revert=_restore(svc),
            fails={
                f"{G}test_smokescreen_refuses_private_address[{svc}]": "covers the stack network. SSRF protection is off",
            },
        )
        for svc in ("cvat_server", "cvat_worker_webhooks")
    ],
    # --- services ---
    Fault(
        id="bridge-wrong-admin-password",
        what="the bridge's CVAT_PWD is not the admin's password",
        inject=_recreate(
            "bridge", '  bridge:\n    environment:\n      CVAT_PWD: "not-the-admin-password"\n'
        ),
        revert=_restore("bridge"),
        fails={
            f"{S}test_cvat_accepts_the_bridge_credentials": "CVAT refuses the credentials in the bridge's environment (CVAT_USER='admin', CVAT_PWD=[REDACTED])",
        },
    ),
    Fault(
        id="bridge-user-not-admin",
        what="the bridge logs in as a regular CVAT user",
        inject=_bridge_as_regular_user,
        revert=_restore("bridge"),
        fails={
            f"{S}test_bridge_user_is_a_cvat_admin": "the bridge's user 'criobe-fault-regular' is not an admin"
        },
    ),
    Fault(
        id="bridge-cvat-url-underscore",
        what="the bridge's CVAT_URL is http://cvat_server:8080",
        inject=_recreate(
            "bridge", '  bridge:\n    environment:\n      CVAT_URL: "http://cvat_server:8080"\n'
        ),
        revert=_restore("bridge"),
        fails={
            f"{S}test_bridge_cvat_url_is_accepted_by_cvat": "'cvat_server' contains '_', which Django's host validation refuses",
        },
    ),
    Fault(
        id="webhooks-worker-process-stopped",
        what="the RQ worker in cvat_worker_webhooks stopped (SIGTERM: warm shutdown, exit 0)",
        inject=lambda twin: twin.exec("cvat_worker_webhooks", "pkill", "-TERM", "-f", "rq worker"),
        revert=_restore("cvat_worker_webhooks"),
        fails={
            f"{S}test_webhooks_worker_consumes_the_webhooks_queue": "no RQ worker consumes the 'webhooks' queue",
        },
    ),
    Fault(
        id="cvat-db-stopped",
        what="cvat_db stopped (services layer alone: the containers layer would catch it first)",
        inject=lambda twin: twin.container("cvat_db").stop(timeout=10),
        revert=_restore("cvat_db"),
        layers=("services",),
        fails={
            f"{S}test_cvat_health_reports_every_backend_working": "DatabaseBackend",
            f"{S}test_cvat_accepts_the_bridge_credentials": "CVAT refuses the credentials",
        },
    ),
    Fault(
        id="cvat-upgraded-past-the-sdk",
        what="cvat_server reports 2.31.0 (upgraded without the SDK and the profile)",
        inject=_recreate(
            "cvat_server", '  cvat_server:\n    environment:\n      CVAT_TWIN_VERSION: "2.31.0"\n'
        ),
        revert=_restore("cvat_server"),
        fails={
            f"{S}test_cvat_reports_the_profiles_version": "reports version '2.31.0', expected '2.29.0'",
            f"{S}test_cvat_sdk_supports_the_server_version": "supports CVAT 2.29, 2.30; the server is 2.31.0",
        },
    ),
    # --- webhooks (alone: the gateway layer would catch these first) ---
    Fault(
        id="webhooks-worker-allowance-missing-events",
        what="SMOKESCREEN_OPTS empty on cvat_worker_webhooks: ping 200, events 407",
        inject=_smokescreen_opts({"cvat_worker_webhooks": ""}),
        revert=_restore("cvat_worker_webhooks"),
        layers=("webhooks",),
        fails={
            f"{W}test_job_update_event_is_delivered_to_the_bridge": "was delivered with 407 \"Egress proxying is denied to host 'bridge.gateway:8000'",
        },
    ),
    Fault(
        id="cvat-server-allowance-missing-ping",
        what="SMOKESCREEN_OPTS empty on cvat_server: pings 407",
        inject=_smokescreen_opts({"cvat_server": ""}),
        revert=_restore("cvat_server"),
        layers=("webhooks",),
        fails={
            f"{W}test_webhook_ping_reaches_the_bridge": "407 is Smokescreen refusing the gateway"
        },
    ),
    Fault(
        id="cvat-server-allows-bridge-port-only",
        what="SMOKESCREEN_OPTS=--allow-address=172.17.0.1:8000 on cvat_server (valid, but only 8000)",
        inject=_smokescreen_opts({"cvat_server": "--allow-address=172.17.0.1:8000"}),
        revert=_restore("cvat_server"),
        layers=("webhooks",),
        fails={
            f"{W}test_signed_delivery_verifies_against_the_raw_body": "Smokescreen may allow only port 8000 of the gateway",
        },
    ),
]
