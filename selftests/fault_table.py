"""The fault table: for every check of the suite, a fault injected into the twin that makes
exactly that check fail, with short diagnostic tokens the message must carry.

    fault id | how to inject it | the checks that must fail, by stable id (+ tokens) | how to revert

Every collected suite check (by its stable id, parameters folded) is named by at least one
fault (test_fault_table.py), and selftests/test_faults.py injects each fault into the running
twin, runs the suite and checks that exactly the named checks fail, every other check passes (or is
waived as the profile says), a skip names a failed check, and nothing is "not run".
A token is a string, or a tuple of strings that must all appear.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from criobe_verify.profile import load_profile
from criobe_verify.waiting import WaitTimeout
from selftests.twin import TWIN_PROFILE, Twin, fake_docker_without_compose, fake_nvidia_smi

Tokens = str | tuple[str, ...]


@dataclass(frozen=True)
class Fault:
    id: str
    what: str
    fails: Mapping[str, Tokens]
    inject: Callable[[Twin], None] = lambda twin: None
    revert: Callable[[Twin], None] = lambda twin: None
    phase: str = "installed"
    # How the suite is run while the fault is in: extra environment, or an edited profile.
    suite_env: Callable[[Twin], Mapping[str, str]] = lambda twin: {}
    profile_edit: Callable[[str], str] | None = None
    # Options the suite is run with (--strict-skips: the run itself must find no problem).
    suite_args: tuple[str, ...] = ()
    # A foreign program holding this host port while the suite runs (preinstall faults).
    hold_port: int | None = None
    # Run only these layers: a higher layer's own diagnosis, without the lower layer that
    # would otherwise catch the same fault first and skip it.
    layers: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())
    # Checks (id patterns, * wildcards) the fault must make skip, and what the skip must say
    # (any of the tokens): an optional part absent is a skip with its reason, not a failure.
    skips: Mapping[str, Tokens] = field(default_factory=dict)


# The layers that cost most of a run (~35 s of function calls and pipeline runs): a fault
# whose checks fail below them runs without them, unless tagged "full".
COSTLY = ("latency", "e2e")


# Every layer that looks at a function's container or its answers: a fault that only
# redeploys a function with a knob runs these (host, ports, gateway, services and webhooks
# never look at a function).
FUNCTION_CONTAINER_LAYERS = ("containers", "network", "functions", "reachability", "inference")


# Tags of the faults CI leaves out (SLOW_FAULTS=1 runs them too). "slow" takes the whole stack
# down and up again; "unit-proven" is one more rule of a checker whose rules a unit selftest
# proves one by one (selftests/test_shapes_and_accuracy.py), while another fault of the same
# check carries that checker through the twin to the report: a redeploy (about 16 s) that
# proves nothing new. Every check stays named by a fault CI runs (test_fault_table.py).
NOT_IN_CI = ("slow", "unit-proven")
# The gridcorners knobs whose rule only the unit selftest needs to prove (counter-clockwise,
# the subtlest, goes through the twin).
UNIT_PROVEN_KNOBS = ("three-corners", "confidence-fraction", "unknown-label")


def in_ci(fault: Fault) -> bool:
    """Whether CI's fault table runs it.

    >>> in_ci(Fault("x", "", {})), in_ci(Fault("x", "", {}, tags=("unit-proven",)))
    (True, False)
    """
    return not set(fault.tags) & set(NOT_IN_CI)


def layer_of(check_id: str) -> str:
    """
    >>> layer_of("e2e/two-stage-exactly-once"), layer_of("ports/internal-port-not-public[8070]")
    ('e2e', 'ports')
    """
    return check_id.split("/", 1)[0]


def cheap_layers() -> tuple[str, ...]:
    """Every layer a run selects by default (not the regression layer, which needs
    --baseline: asking for it without one is a usage error), but the costly ones."""
    from criobe_verify.layers import DEFAULT_LAYERS

    return tuple(name for name in DEFAULT_LAYERS if name not in COSTLY)


def suite_layers(fault: Fault) -> tuple[str, ...]:
    """The layers the fault's suite run selects (empty: all)."""
    if fault.layers or fault.phase != "installed" or "full" in fault.tags:
        return fault.layers
    if any(layer_of(t) in COSTLY for t in fault.fails):
        return ()
    return cheap_layers()


def tokens(fragment: Tokens) -> tuple[str, ...]:
    return (fragment,) if isinstance(fragment, str) else tuple(fragment)


def _overlay(services: str) -> str:
    return "services:\n" + services


def _recreate(service: str, overlay: str) -> Callable[[Twin], None]:
    return lambda twin: twin.recreate(service, overlay=_overlay(overlay))


def _restore(*services: str) -> Callable[[Twin], None]:
    return lambda twin: twin.restore(*services)


def _no_bridge_overlay(twin: Twin) -> None:
    twin.remove("bridge")
    twin.stack_without("bridge/docker-compose.bridge.yml").run(
        "up", "-d", "--no-deps", "--force-recreate", "cvat_server", "cvat_worker_webhooks"
    )


def _no_serverless_overlay(twin: Twin) -> None:
    """The stack as if the guide's third file was left out: no nuclio, no CVAT_SERVERLESS on
    cvat_server, no host.docker.internal in cvat_server and cvat_worker_annotation."""
    twin.remove("nuclio")
    twin.stack_without("components/serverless/docker-compose.serverless.yml").run(
        "up", "-d", "--no-deps", "--force-recreate", "cvat_server", "cvat_worker_annotation"
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


def _crash_loop(twin: Twin) -> None:
    """cvat_opa dies 12 s after each start under restart: always: a 3 s window would miss it."""
    twin.recreate(
        "cvat_opa",
        overlay=_overlay(
            '  cvat_opa:\n    entrypoint: ["/bin/sh", "-c", "sleep 12; exit 3"]\n    command: []\n'
        ),
    )
    twin.wait_for(lambda: twin.container("cvat_opa").attrs["RestartCount"] >= 1, 40, "a restart")


def _hang_dashboard(twin: Twin) -> None:
    """The dashboard process frozen (SIGSTOP): its HEALTHCHECK probe times out, as a hung
    dashboard's does; the container keeps running."""
    twin.container("nuclio").kill(signal="SIGSTOP")
    twin.wait_for(
        lambda: (
            (twin.container("nuclio").attrs["State"].get("Health") or {}).get("Status")
            == "unhealthy"
        ),
        60,
        "nuclio unhealthy",
    )


def _thaw_dashboard(twin: Twin) -> None:
    """A thawed dashboard answers again; it is recreated only if it does not turn healthy."""
    twin.container("nuclio").kill(signal="SIGCONT")
    try:
        twin.wait_for(
            lambda: (
                (twin.container("nuclio").attrs["State"].get("Health") or {}).get("Status")
                == "healthy"
            ),
            30,
            "nuclio healthy again",
        )
    except WaitTimeout:
        twin.restore("nuclio")


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


def _program_state(twin: Twin, container: str, program: str) -> str:
    out = (
        twin.container(container)
        .exec_run(
            ["supervisorctl", "-s", "unix:///tmp/supervisord/supervisor.sock", "status", program]
        )
        .output.decode()
    )
    words = out.split()
    return words[1] if len(words) > 1 else out.strip()


def _smokescreen_fatal(twin: Twin) -> None:
    """supervisord gives a Smokescreen that refuses its options up after 3 quick retries;
    FATAL comes 7-15 s after the start (its 1 s poll), BACKOFF before."""
    services = ("cvat_server", "cvat_worker_webhooks")
    _smokescreen_opts({s: "--allow-address=bridge.gateway" for s in services})(twin)
    for s in services:
        twin.wait_for(lambda s=s: _program_state(twin, s, "smokescreen") == "FATAL", 60, "FATAL")


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


# The bridge's user stays a superuser but leaves CVAT's admin group, as an admin editing the
# user in Django's admin page can do. CVAT puts a superuser that is also staff back into the
# group whenever the user is saved (a password login saves last_login), so the fault also
# takes is_staff away: is_superuser alone is what it shows (twin/images/cvat-server/README.md).
ADMIN_GROUP_SQL = {
    "take": "UPDATE auth_user SET is_staff = false WHERE username = 'admin'; "
    "DELETE FROM auth_user_groups WHERE user_id = (SELECT id FROM auth_user WHERE username = "
    "'admin') AND group_id = (SELECT id FROM auth_group WHERE name = 'admin');",
    "give": "UPDATE auth_user SET is_staff = true WHERE username = 'admin'; "
    "INSERT INTO auth_user_groups (user_id, group_id) SELECT u.id, g.id FROM auth_user u, "
    "auth_group g WHERE u.username = 'admin' AND g.name = 'admin' AND NOT EXISTS (SELECT 1 "
    "FROM auth_user_groups x WHERE x.user_id = u.id AND x.group_id = g.id);",
}


# A drift small enough to stay accurate (IoU above 0.8) but not the recorded answer.
FAULT_ENV = {"drift": {"CRIOBE_TWIN_DRIFT_PX": "3"}}


def _function_fault(name: str, fault: str) -> Callable[[Twin], None]:
    """Redeploy a reference function with one of its fault knobs (CRIOBE_TWIN_FAULT)."""
    return lambda twin: twin.redeploy(
        name, env={"CRIOBE_TWIN_FAULT": fault, **FAULT_ENV.get(fault, {})}
    )


def _restore_functions(*names: str) -> Callable[[Twin], None]:
    return lambda twin: twin.restore_functions(*names)


def _without_network(config: dict) -> None:
    del config["spec"]["platform"]["attributes"]["network"]


def _spec_without(label: str) -> Callable[[dict], None]:
    """A function.yaml edit: its CVAT spec (metadata.annotations.spec) without one label."""

    def edit(config: dict) -> None:
        annotations = config["metadata"]["annotations"]
        spec = [item for item in json.loads(annotations["spec"]) if item["name"] != label]
        annotations["spec"] = json.dumps(spec)

    return edit


def _delete_function(twin: Twin, name: str) -> None:
    from criobe_verify.nuclio import Dashboard

    dashboard = Dashboard(twin.profile.nuclio_url)
    try:
        dashboard.delete(name)
    finally:
        dashboard.close()


def _function_removed(twin: Twin) -> None:
    _delete_function(twin, "pth-yolo-gridpose")


def _project_removed(twin: Twin) -> None:
    """The functions redeployed into project `default`, then project cvat deleted: they run,
    but CVAT (which lists project cvat) sees none."""
    from criobe_verify.nuclio import Dashboard

    for fn in twin.profile.functions:
        twin.redeploy(fn.name, project="default")
    dashboard = Dashboard(twin.profile.nuclio_url)
    try:
        dashboard.delete_project(twin.profile.nuclio.project)
    finally:
        dashboard.close()


def _project_restored(twin: Twin) -> None:
    twin.restore_functions(*(f.name for f in twin.profile.functions))


def _published_port(container) -> str:
    bindings = container.attrs["NetworkSettings"].get("Ports", {}).get("8080/tcp") or []
    return next((b["HostPort"] for b in bindings if b.get("HostPort")), "")


def _function_state(twin: Twin, name: str) -> str:
    from criobe_verify.nuclio import Dashboard

    dashboard = Dashboard(twin.profile.nuclio_url)
    try:
        return ((dashboard.function(name) or {}).get("status") or {}).get("state", "")
    finally:
        dashboard.close()


def _restart_function_container(name: str) -> Callable[[Twin], None]:
    """`docker restart` of a function container published on a random port (a first deploy):
    Docker publishes another port, the dashboard keeps its httpPort and says ready
    (nuclio/nuclio#1668)."""

    def inject(twin: Twin) -> None:
        cname = f"nuclio-nuclio-{name}"
        bindings = twin.container(cname).attrs["HostConfig"]["PortBindings"]["8080/tcp"]
        if any(b.get("HostPort") for b in bindings):
            # A redeploy (an earlier fault's revert) pinned the port, as Nuclio reuses the
            # previous one: deploy it afresh, on a random port, as a first deploy does.
            _delete_function(twin, name)
            twin.redeploy(name)
        container = twin.container(cname)
        before = _published_port(container)
        container.restart(timeout=5)

        def moved_and_healthy() -> bool:
            container.reload()
            health = (container.attrs["State"].get("Health") or {}).get("Status")
            return health == "healthy" and _published_port(container) not in ("", before)

        twin.wait_for(moved_and_healthy, 60, f"{cname} healthy on a new port")
        # The dashboard's healthiness check (every 30 s) may have seen the restart: ready again.
        twin.wait_for(lambda: _function_state(twin, name) == "ready", 75, f"{name} ready")

    return inject


# The functions the bridge calls (all but SAM): each bounded by its AUTO_ANN_TIMEOUT.
BRIDGE_CALLED = ("pth-yolo-gridcorners", "pth-yolo-gridpose", "pth-lama", "pth-yolo-coralsegv4")


def _without_restart_policy(config: dict) -> None:
    del config["spec"]["platform"]["attributes"]["restartPolicy"]


def _event_timeout(value: str) -> Callable[[dict], None]:
    def edit(config: dict) -> None:
        config["spec"]["eventTimeout"] = value

    return edit


def _few_latency_calls(text: str, *edits: tuple[str, str]) -> str:
    """The twin profile with 3 timed calls and no warm-up (and the edits given): a latency
    fault needs one slow call, not ten, and each call on the 1920x1920 image costs a second."""
    for old, new in (("calls = 10\nwarmup = 2", "calls = 3\nwarmup = 0"), *edits):
        assert old in text, f"the twin profile no longer has {old!r}"
        text = text.replace(old, new)
    return text


def _psql(twin: Twin, sql: str) -> None:
    twin.exec("cvat_db", "psql", "-U", "root", "-d", "cvat", "-v", "ON_ERROR_STOP=1", "-c", sql)


def _signal_worker(twin: Twin, signal: str) -> None:
    """Signal the real worker command line, `manage.py rqworker -v 3 webhooks`."""
    twin.exec("cvat_worker_webhooks", "pkill", f"-{signal}", "-f", "manage.py rqworker .*webhooks")


def _uptime(twin: Twin, container: str, program: str) -> int:
    out = (
        twin.container(container)
        .exec_run(
            ["supervisorctl", "-s", "unix:///tmp/supervisord/supervisor.sock", "status", program]
        )
        .output.decode()
    )
    h, m, s = (out.rsplit("uptime", 1)[-1].strip() or "0:00:00").split(":")
    return int(h) * 3600 + int(m) * 60 + int(s)


def _kill_worker(twin: Twin) -> None:
    # A restart right after the container started looks like supervisord's start-up spread:
    # let the programs run a while first, as on a stack that has been up.
    twin.wait_for(
        lambda: _uptime(twin, "cvat_worker_webhooks", "rqworker-webhooks:*") >= 10, 60, "10 s up"
    )
    _signal_worker(twin, "KILL")
    # supervisord respawns it at once; its siblings' uptime must pull ahead of the grace
    time.sleep(6)


def _no_docker_socket(twin: Twin) -> Mapping[str, str]:
    return {"DOCKER_HOST": "unix:///run/criobe-verify-no-such-docker.sock"}


def _no_compose(twin: Twin) -> Mapping[str, str]:
    directory = Path(tempfile.mkdtemp(prefix="criobe-nocompose-", dir=twin.workdir))
    return {"PATH": fake_docker_without_compose(directory)}


# The twin's host has no GPU: these faults put a GPU host's nvidia-smi on the suite's PATH
# (its CSV answers as NVIDIA documents them) and ask one function for a GPU in the profile.
_GPU_REQUIRED = (
    'budget_gpu_s = 1.1\nbudget_cpu_s = 2.5\ngpu = "none"',
    'budget_gpu_s = 1.1\nbudget_cpu_s = 2.5\ngpu = "required"',
)
_NVML_MISMATCH = "Failed to initialize NVML: Driver/library version mismatch"


def _gpu_required(text: str) -> str:
    return text.replace(*_GPU_REQUIRED)


def _smi_dir(twin: Twin) -> Path:
    return Path(tempfile.mkdtemp(prefix="criobe-nvidia-smi-", dir=twin.workdir))


def _driver_mismatch(twin: Twin) -> Mapping[str, str]:
    return {"PATH": fake_nvidia_smi(_smi_dir(twin), "", fails=_NVML_MISMATCH)}


def _functions_hold_the_gpu(twin: Twin) -> Mapping[str, str]:
    """A 40 GiB GPU of which gridcorners' process holds 39,000 MiB (its host pid, as
    nvidia-smi on the host lists it)."""
    container = twin.docker.containers.get("nuclio-nuclio-pth-yolo-gridcorners")
    top = container.top()
    pid = top["Processes"][0][top["Titles"].index("PID")]
    gpus = "0, NVIDIA A100-SXM4-40GB, 550.54.15, 40960\n"
    return {"PATH": fake_nvidia_smi(_smi_dir(twin), gpus, apps=f"{pid}, 39000\n")}


def _without_waivers(text: str) -> str:
    """The twin profile with its waivers dropped: what the stock overlay gives unwaived."""
    head, sep, rest = text.partition("[[waivers]]")
    if not sep:
        return text
    # The waiver block ends at the next table header.
    following = rest.split("\n[", 1)
    return head + ("\n[" + following[1] if len(following) > 1 else "")


def _wrong_project_fails() -> dict[str, Tokens]:
    """Every container is on criobe_cvat, so none is on cvat_cvat, has its alias there, or
    resolves a stack name to a cvat_cvat address."""
    profile = load_profile(TWIN_PROFILE)
    fails: dict[str, Tokens] = {
        f"network/on-stack-network[{c.name}]": ("is on criobe_cvat", "cvat_cvat")
        for c in profile.containers
    }
    fails |= {
        f"network/alias-set[{c.name}]": ("missing on cvat_cvat",)
        for c in profile.containers
        if c.aliases
    }
    fails |= {
        f"network/resolves-stack-names[{p.source}]": ("expected a container on cvat_cvat",)
        for p in profile.dns
    }
    return fails


def _preinstall_faults() -> list[Fault]:
    profile = load_profile(TWIN_PROFILE)
    return [
        Fault(
            id=f"port-{p.port}-held-before-install",
            what=f"a foreign program listens on {p.port} before the stack is installed",
            phase="preinstall",
            hold_port=p.port,
            fails={
                f"host/port-free-before-install[{p.port}]": (
                    f"host port {p.port}",
                    "already held",
                )
            },
        )
        for p in profile.ports
        if p.free_before_install
    ]


# --- the lab's webhooks and the e2e run ---

LAB = "lab-quadrats"  # names without the run prefix: the lab's own, as the suite sees them
E2E_RUNS = (
    "e2e/two-stage-exactly-once",
    "e2e/three-stage-exactly-once",
)


def _lab_project(cvat, name: str) -> dict:
    r = cvat.post("/api/projects", json={"name": name, "labels": [{"name": "coral"}]})
    assert r.status_code == 201, f"{name}: {r.status_code} {r.text[:200]}"
    return r.json()


def _lab_webhook(cvat, project_id: int, path: str, secret: str = "") -> dict:
    r = cvat.post("/api/webhooks", json={
        "target_url": f"http://bridge.gateway:8000{path}", "description": "", "type": "project",
        "content_type": "application/json", "secret": secret, "is_active": True,
        "enable_ssl": False, "events": ["update:task", "update:job"], "project_id": project_id,
    })  # fmt: skip
    assert r.status_code == 201, f"webhook {path}: {r.status_code} {r.text[:200]}"
    return r.json()


def _lab_webhooks_misnamed(twin: Twin) -> None:
    with twin.cvat() as cvat:
        corners = _lab_project(cvat, f"{LAB}-corners")
        _lab_webhook(
            cvat, corners["id"], "/crop-quadrat-and-create-new-task-webhook?target_proj_id=999999"
        )
        _lab_webhook(cvat, corners["id"], "/detect-model-webhook?model_name=pth-yolo-gridcorner")  # fmt: skip


def _bridge_answers() -> bool:
    import httpx

    try:
        return httpx.get("http://localhost:8000/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _lab_webhook_unsigned_then_secret_set(twin: Twin) -> None:
    """The tutorial's unsigned webhooks, then WEBHOOK_SECRET set in bridge/.env: the bridge
    now refuses them (403); the ping shows it in the webhook's deliveries."""
    with twin.cvat() as cvat:
        corners = _lab_project(cvat, f"{LAB}-corners")
        corals = _lab_project(cvat, f"{LAB}-corals")
        hook = _lab_webhook(cvat, corners["id"],
                            f"/crop-quadrat-and-create-new-task-webhook?target_proj_id={corals['id']}")  # fmt: skip
    twin.recreate("bridge", overlay=_overlay(
        '  bridge:\n    environment:\n      WEBHOOK_SECRET: "lab-secret-set-later-5d1f"\n'))  # fmt: skip
    twin.wait_for(_bridge_answers, 60, "the recreated bridge answering on localhost:8000")
    with twin.cvat() as cvat:
        r = cvat.post(f"/api/webhooks/{hook['id']}/ping")
        assert r.json()["status_code"] == 403, r.text[:300]


def _lab_removed(*services: str) -> Callable[[Twin], None]:
    def revert(twin: Twin) -> None:
        with twin.cvat() as cvat:
            found = cvat.get("/api/projects", params={"search": LAB, "page_size": 100}).json()
            for p in found["results"]:
                if p["name"].startswith(LAB):
                    cvat.delete(f"/api/projects/{p['id']}")
        if services:
            twin.restore(*services)

    return revert


LAB_ORG = "criobelab"


def _proxy_pins_lab_organization(twin: Twin) -> None:
    """A lab whose organization has a webhook watching every project, task and job event,
    and whose proxy in front of CVAT (traefik's custom request headers) adds X-Organization
    to every API request: what the suite creates would land in that organization."""
    with twin.cvat() as cvat:
        org = cvat.post("/api/organizations", json={"slug": LAB_ORG, "name": "the lab"})
        assert org.status_code == 201, org.text
        hook = cvat.post("/api/webhooks", headers={"X-Organization": LAB_ORG}, json={
            "target_url": "http://lab-pipeline.example:9000/quadrat", "type": "organization",
            "events": ["create:task", "update:task", "create:job", "update:job"],
            "enable_ssl": False,
        })  # fmt: skip
        assert hook.status_code == 201, hook.text
    header = f"proxy_set_header X-Organization {LAB_ORG};"
    twin.exec("traefik", "sh", "-c",
              f"sed -i 's/proxy_set_header Host $http_host;/&\\n    {header}/' "
              "/etc/nginx/conf.d/cvat.conf && grep -q X-Organization /etc/nginx/conf.d/cvat.conf "
              "&& nginx -s reload")  # fmt: skip
    time.sleep(1)


def _lab_organization_removed(twin: Twin) -> None:
    twin.restore("traefik")  # its entrypoint renders the routing from the template again
    with twin.cvat() as cvat:
        for org in cvat.get("/api/organizations", params={"page_size": 100}).json()["results"]:
            if org["slug"] == LAB_ORG:
                cvat.delete(f"/api/organizations/{org['id']}")


def _bridge_fault(knobs: Mapping[str, str]) -> Callable[[Twin], None]:
    env = "".join(f'      {k}: "{v}"\n' for k, v in knobs.items())
    return _recreate("bridge", f"  bridge:\n    environment:\n{env}")


def _stop_bridge(twin: Twin) -> None:
    twin.container("bridge").stop(timeout=5)


def _stage_timeout(seconds: int) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert "stage_timeout_s = 20" in text
        return text.replace("stage_timeout_s = 20", f"stage_timeout_s = {seconds}")

    return edit


E2E_FAULTS = [
    Fault(
        id="lab-webhooks-name-missing-project-and-function",
        what="the lab's corners project: a crop webhook to target_proj_id=999999 and a detect "
        "webhook for model_name=pth-yolo-gridcorner (a typo)",
        inject=_lab_webhooks_misnamed,
        revert=_lab_removed(),
        fails={
            "webhooks/lab-webhooks-name-existing-targets": (
                "target_proj_id=999999 is not a project in CVAT",
                "model_name 'pth-yolo-gridcorner' is not a function CVAT lists",
                f"project '{LAB}-corners'",
            )
        },
    ),
    Fault(
        id="bridge-secret-set-after-unsigned-lab-webhooks",
        what="WEBHOOK_SECRET set in bridge/.env after the lab's webhooks were made unsigned; "
        "their newest delivery (a ping) refused 403",
        inject=_lab_webhook_unsigned_then_secret_set,
        revert=_lab_removed("bridge"),
        fails={
            "webhooks/lab-webhooks-deliveries-200": (
                "ping at",
                "403",
                "not WEBHOOK_SECRET in bridge/.env",
            )
        },
    ),
    Fault(
        id="bridge-logs-its-password",
        what="the bridge prints its CVAT login, unredacted, at start",
        inject=_bridge_fault({"BRIDGE_TWIN_FAULT": "log-settings-with-password"}),
        revert=_restore("bridge"),
        fails={
            "services/bridge-log-hides-secrets": (
                "CVAT_PWD (1×)",
                "log in to CVAT as admin",
            )
        },
    ),
    Fault(
        id="bridge-stopped-e2e",
        what="the bridge container stopped (e2e layer alone: the containers layer names it first)",
        inject=_stop_bridge,
        revert=_restore("bridge"),
        layers=("e2e",),
        fails={
            t: (
                "stalled at stage 'corners detected'",
                "the bridge container is exited",
                "docker start bridge",
            )
            for t in E2E_RUNS
        },
    ),
    Fault(
        id="bridge-redetects-on-every-update",
        what="the bridge detects on every update:job of a job in progress, so its own "
        "annotation save triggers another detection",
        inject=_bridge_fault({"BRIDGE_TWIN_FAULT": "redetect-on-every-update"}),
        revert=_restore("bridge"),
        layers=("e2e",),  # nothing below the e2e layer sees a repeat
        fails={t: ("exactly once",) for t in E2E_RUNS},
    ),
    Fault(
        id="gridcorners-two-corners-in-the-pipeline",
        what="pth-yolo-gridcorners finds two corners (e2e layer alone: the inference layer "
        "names it first)",
        inject=_function_fault("pth-yolo-gridcorners", "two-corners"),
        revert=_restore_functions("pth-yolo-gridcorners"),
        layers=("e2e",),
        fails={t: ("the corners it stored break the contract",) for t in E2E_RUNS},
    ),
    Fault(
        id="coralseg-slower-than-the-stage-timeout",
        what="pth-yolo-coralsegv4 takes 12 s per call, the profile's e2e stage_timeout_s 6 s "
        "(e2e layer alone: the latency layer names it first)",
        inject=lambda twin: twin.redeploy("pth-yolo-coralsegv4", env={"CRIOBE_TWIN_DELAY_S": "12"}),
        revert=_restore_functions("pth-yolo-coralsegv4"),
        profile_edit=_stage_timeout(6),
        layers=("e2e",),
        # The three-stage run follows the two-stage one: its first stages may wait behind the
        # bridge's still-running 12 s coral call, so which of its stages stalls varies.
        fails={
            "e2e/two-stage-exactly-once": (
                "stalled at stage 'corals detected'",
                "not there after 6 s",
            ),
            "e2e/three-stage-exactly-once": (
                "stalled at stage",
                "not there after 6 s",
            ),
        },
    ),
]

FAULTS: list[Fault] = [
    *_preinstall_faults(),
    # --- host ---
    Fault(
        id="docker-socket-missing",
        what="DOCKER_HOST points at a socket that does not exist",
        suite_env=_no_docker_socket,
        # One diagnosis naming the endpoint used: the host layer's other checks that need the
        # engine skip naming it (fixtures/docker.py), the layers above by the gate.
        fails={
            "host/docker-engine-answers": (
                "Docker engine: not reachable at unix:///run/criobe-verify-no-such-docker.sock "
                "(DOCKER_HOST): no socket there",
                "systemctl start docker",
            ),
        },
        skips={"*": "host/docker-engine-answers"},
    ),
    Fault(
        id="compose-v2-missing",
        what="the docker CLI has no compose plugin",
        suite_env=_no_compose,
        fails={"host/compose-v2-available": ("Compose v2", "`docker compose version` failed")},
    ),
    Fault(
        id="disk-threshold-raised-above-free-space",
        what="the profile's disk threshold raised above the free space of Docker's root "
        "(this machine's disk is not filled)",
        profile_edit=lambda t: t.replace("disk_free_gb_min = 5", "disk_free_gb_min = 100000"),
        fails={"host/docker-root-free-disk": ("GB free", "≥ 100000 GB")},
    ),
    Fault(
        id="engine-floor-above-a-clients-api",
        what="a stack client speaking an API older than this engine's minimum (Debian's 20.10 "
        "accepts 1.12 and up, and its floor cannot be raised here: the profile says the Nuclio "
        "dashboard speaks 1.11; Docker 29's 1.44 against 1.42 is proven on its recorded "
        "/version in selftests/test_engine_api_floor.py)",
        profile_edit=lambda t: t.replace('api_version = "1.42"', 'api_version = "1.11"'),
        fails={
            "host/engine-accepts-the-stacks-clients": (
                "refuses API versions below 1.12",
                "Nuclio 1.13.0 dashboard (its docker CLI 23.0.1) speaks API 1.11",
            )
        },
    ),
    Fault(
        id="traefik-ports-unpublished",
        what="traefik publishes 8081 instead of 8080 and not 8090",
        inject=_recreate("traefik", '  traefik:\n    ports: !override ["127.0.0.1:8081:8080"]\n'),
        revert=_restore("traefik"),
        fails={
            "host/port-held-by-its-container[8080]": ("host port 8080", "traefik"),
            "host/port-held-by-its-container[8090]": ("host port 8090", "traefik"),
        },
    ),
    Fault(
        id="serverless-overlay-left-out",
        what="the stack started without components/serverless/docker-compose.serverless.yml",
        inject=_no_serverless_overlay,
        revert=_restore("cvat_server", "cvat_worker_annotation"),
        fails={"host/port-held-by-its-container[8070]": "docker-compose.serverless.yml"},
    ),
    Fault(
        id="bridge-overlay-left-out",
        what="the stack started without bridge/docker-compose.bridge.yml",
        inject=_no_bridge_overlay,
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={"host/port-held-by-its-container[8000]": "bridge/docker-compose.bridge.yml"},
    ),
    # --- containers ---
    Fault(
        id="container-stopped",
        what="cvat_ui stopped",
        inject=lambda twin: twin.container("cvat_ui").stop(timeout=5),
        revert=_restore("cvat_ui"),
        fails={"containers/running[cvat_ui]": ("cvat_ui", "'exited'")},
    ),
    Fault(
        id="container-removed",
        what="cvat_worker_export removed",
        inject=lambda twin: twin.remove("cvat_worker_export"),
        revert=_restore(),
        fails={"containers/exists[cvat_worker_export]": ("cvat_worker_export", "no such")},
    ),
    Fault(
        id="crash-loop-after-12-s",
        what="cvat_opa exits 12 s after each start and restart: always brings it back",
        inject=_crash_loop,
        revert=_restore("cvat_opa"),
        fails={"containers/not-crash-looping[cvat_opa]": ("cvat_opa", "crash-looping")},
    ),
    Fault(
        id="nuclio-dashboard-hung",
        what="the dashboard process frozen (SIGSTOP): its health check times out",
        inject=_hang_dashboard,
        revert=_thaw_dashboard,
        fails={"containers/healthy[nuclio]": ("nuclio", "'unhealthy'")},
    ),
    Fault(
        id="image-health-check-failing",
        what="cvat_redis_ondisk with a health check that fails (as kvrocks' own can)",
        inject=_recreate(
            "cvat_redis_ondisk",
            '  cvat_redis_ondisk:\n    healthcheck:\n      test: ["CMD", "false"]\n'
            "      interval: 1s\n      retries: 1\n",
        ),
        revert=_restore("cvat_redis_ondisk"),
        fails={"containers/other-health-checks-pass": ("cvat_redis_ondisk", "'unhealthy'")},
    ),
    Fault(
        id="smokescreen-fatal-on-hostname",
        what="SMOKESCREEN_OPTS=--allow-address=bridge.gateway: supervisord gives Smokescreen up",
        inject=_smokescreen_fatal,
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        fails={
            f"containers/supervised-programs-running[{s}]": ("program smokescreen is FATAL",)
            for s in ("cvat_server", "cvat_worker_webhooks")
        },
    ),
    Fault(
        id="webhooks-worker-killed",
        what="the RQ worker in cvat_worker_webhooks killed (SIGKILL); supervisord respawned it",
        inject=_kill_worker,
        revert=_restore("cvat_worker_webhooks"),
        fails={
            "containers/supervised-programs-running[cvat_worker_webhooks]": (
                "supervisord restarted rqworker-webhooks-0",
                "respawned it",
            )
        },
    ),
    Fault(
        id="wrong-image-tag",
        what="cvat_ui runs a v2.28.0 image",
        inject=_tag_wrong_ui,
        revert=_untag_wrong_ui,
        fails={
            "containers/image-matches-profile[cvat_ui]": (
                "criobe-twin/cvat-ui:v2.28.0",
                "criobe-twin/cvat-ui:v2.29.0",
            )
        },
    ),
    Fault(
        id="restart-policy-no",
        what='cvat_ui has restart: "no"',
        inject=_recreate("cvat_ui", '  cvat_ui:\n    restart: "no"\n'),
        revert=_restore("cvat_ui"),
        fails={
            "containers/restart-policy-matches-profile[cvat_ui]": (
                "restart policy 'no'",
                "'always'",
            )
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
        fails={"ports/cvat-ui-answers-head": "200 text/html from cvat_ui"},
    ),
    Fault(
        id="allowed-hosts-without-localhost",
        what="cvat_server's ALLOWED_HOSTS leaves out localhost",
        inject=_recreate(
            "cvat_server", '  cvat_server:\n    environment:\n      ALLOWED_HOSTS: "cvat-server"\n'
        ),
        revert=_restore("cvat_server"),
        fails={"ports/cvat-api-answers-about": "DisallowedHost"},
    ),
    Fault(
        id="nuclio-port-mismapped",
        what="host 8070 is mapped to a container port where nothing listens",
        inject=_recreate("nuclio", '  nuclio:\n    ports: !override ["8070:8071"]\n'),
        revert=_restore("nuclio"),
        fails={"ports/nuclio-dashboard-answers": ("nuclio (:8070)", "failed")},
    ),
    Fault(
        id="bridge-port-mismapped",
        what="host 8000 is mapped to a bridge port where nothing listens",
        inject=_recreate("bridge", '  bridge:\n    ports: !override ["8000:8001"]\n'),
        revert=_restore("bridge"),
        fails={
            "ports/bridge-answers-health": ("bridge (:8000)", "failed"),
            "ports/bridge-reachable-at-docker-gateway": "every webhook fails",
        },
    ),
    Fault(
        id="bridge-on-loopback-only",
        what="bridge published as 127.0.0.1:8000:8000",
        inject=_recreate("bridge", '  bridge:\n    ports: !override ["127.0.0.1:8000:8000"]\n'),
        revert=_restore("bridge"),
        fails={"ports/bridge-reachable-at-docker-gateway": "bound to 127.0.0.1 only"},
    ),
    *[
        Fault(
            id=f"{service}-published-publicly",
            what=f"{service} publishes {port} on 0.0.0.0",
            inject=_recreate(service, f"  {service}:\n    ports: {ports}\n"),
            revert=_restore(service),
            fails={
                f"ports/internal-port-not-public[{port}]": (
                    f"{service} publishes {port}/tcp on 0.0.0.0:{host_port}",
                )
            },
        )
        for service, port, host_port, ports in [
            ("cvat_db", 5432, 5432, '["5432:5432"]'),
            ("cvat_redis_inmem", 6379, 16379, '["16379:6379"]'),  # remapped: still 6379 inside
            ("cvat_redis_ondisk", 6666, 6666, '["6666:6666"]'),
        ]
    ],
    Fault(
        id="nuclio-published-publicly-unwaived",
        what="the stock serverless overlay's '8070:8070' with the twin profile's waiver removed",
        inject=_recreate("nuclio", '  nuclio:\n    ports: !override ["8070:8070"]\n'),
        revert=_restore("nuclio"),
        profile_edit=_without_waivers,
        fails={
            "ports/internal-port-not-public[8070]": (
                "nuclio publishes 8070/tcp on 0.0.0.0:8070",
                "drives the Docker socket",
            )
        },
    ),
    Fault(
        id="redis-on-host-network",
        what="cvat_redis_inmem with network_mode: host (its 6379 on every host interface)",
        inject=_recreate(
            "cvat_redis_inmem",
            "  cvat_redis_inmem:\n    network_mode: host\n    networks: !reset []\n",
        ),
        revert=_restore("cvat_redis_inmem"),
        layers=("ports",),
        fails={
            "ports/internal-port-not-public[6379]": (
                "network_mode: host",
                "0.0.0.0:6379 is listening",
            )
        },
    ),
    Fault(
        id="traefik-on-loopback-only",
        what="traefik publishes 8080 and 8090 on 127.0.0.1 only",
        inject=_recreate(
            "traefik",
            '  traefik:\n    ports: !override ["127.0.0.1:8080:8080", "127.0.0.1:8090:8090"]\n',
        ),
        revert=_restore("traefik"),
        fails={
            f"ports/public-port-on-all-interfaces[{port}]": (
                f"publishes {port} on 127.0.0.1",
                "lab members cannot reach it",
            )
            for port in (8080, 8090)
        },
    ),
    # --- network ---
    Fault(
        id="container-on-another-network-only",
        what="bridge moved from cvat_cvat to another network",
        inject=_other_network,
        revert=_other_network_revert,
        fails={
            "network/on-stack-network[bridge]": (
                "bridge: is on criobe_fault_elsewhere",
                "cvat_cvat",
            ),
            "network/resolves-stack-names[bridge]": ("cannot resolve cvat-server",),
        },
    ),
    Fault(
        id="cvat-server-alias-missing",
        what="cvat_server reconnected to cvat_cvat without its alias",
        inject=_drop_alias,
        revert=_restore("cvat_server"),
        fails={
            "network/alias-set[cvat_server]": "alias 'cvat-server' missing on cvat_cvat",
            "network/resolves-stack-names[bridge]": "cannot resolve cvat-server",
            "network/resolves-stack-names[cvat_opa]": "cannot resolve cvat-server",
        },
    ),
    Fault(
        id="bridge-resolver-broken",
        what="the bridge's /etc/resolv.conf points at a dead resolver",
        inject=_break_resolver,
        revert=_restore("bridge"),
        fails={"network/resolves-stack-names[bridge]": "bridge: cannot resolve"},
    ),
    Fault(
        id="wrong-compose-project",
        what="the stack started as compose project 'criobe' (network criobe_cvat); the "
        "functions Nuclio deployed keep cvat_cvat alive, as on a real host",
        inject=_other_project,
        revert=_other_project_revert,
        fails=_wrong_project_fails(),
        tags=("slow",),
    ),
    Fault(
        id="stack-network-missing",
        what="the profile's network is one no stack container made (cvat_criobe)",
        profile_edit=lambda text: text.replace('network = "cvat_cvat"', 'network = "cvat_criobe"'),
        fails={"network/stack-network-exists": ("network cvat_criobe", "does not exist")},
    ),
    # --- gateway ---
    Fault(
        id="webhooks-worker-allowance-missing",
        what="SMOKESCREEN_OPTS empty on cvat_worker_webhooks only",
        inject=_smokescreen_opts({"cvat_worker_webhooks": ""}),
        revert=_restore("cvat_worker_webhooks"),
        fails={
            "gateway/bridge-answers-through-smokescreen[cvat_worker_webhooks]": (
                "was refused: 407",
                "Deny: Private Range",
                "SMOKESCREEN_OPTS is ''",
            ),
        },
    ),
    Fault(
        id="allow-address-hostname",
        what="SMOKESCREEN_OPTS=--allow-address=bridge.gateway (gateway layer alone: the "
        "containers layer names the FATAL program first)",
        inject=_smokescreen_opts(
            {s: "--allow-address=bridge.gateway" for s in ("cvat_server", "cvat_worker_webhooks")}
        ),
        revert=_restore("cvat_server", "cvat_worker_webhooks"),
        layers=("gateway",),
        fails={
            f"gateway/smokescreen-listening[{s}]": (
                "refuses to start on it",
                "address must be in the form ip[:port], got bridge.gateway",
            )
            for s in ("cvat_server", "cvat_worker_webhooks")
        },
    ),
    Fault(
        id="smokescreen-on-another-port",
        what="SMOKESCREEN_OPTS adds --listen-port=4751 on cvat_server: alive, 4750 closed",
        inject=_smokescreen_opts({"cvat_server": "--allow-address=172.17.0.1 --listen-port=4751"}),
        revert=_restore("cvat_server"),
        fails={
            "gateway/smokescreen-listening[cvat_server]": (
                "process alive",
                "--listen-port=4751",
                "does not accept connections",
            )
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
            f"gateway/bridge-answers-through-smokescreen[{s}]": "on port 9999 only"
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
            f"gateway/bridge-answers-through-smokescreen[{s}]": (
                "allows 192.168.65.254",
                "Docker Desktop on Windows/WSL2",
            )
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
                f"gateway/bridge-gateway-resolves[{svc}]": (
                    "extra_hosts has no bridge.gateway entry",
                ),
            },
        )
        for svc, keep in [
            ("cvat_server", '!override ["host.docker.internal:host-gateway"]'),
            ("cvat_worker_webhooks", "!reset []"),
        ]
    ],
    Fault(
        id="smokescreen-stopped-cvat-server",
        what="the Smokescreen process in cvat_server stopped (SIGTERM: it exits 0, not "
        "restarted; gateway layer alone: the containers layer names the EXITED program first)",
        inject=lambda twin: twin.exec(
            "cvat_server", "pkill", "-TERM", "-f", "/usr/local/bin/smokescreen"
        ),
        revert=_restore("cvat_server"),
        layers=("gateway",),
        fails={
            "gateway/smokescreen-listening[cvat_server]": (
                "no smokescreen process",
                "is valid, so the process was stopped or crashed",
            ),
        },
    ),
    *[
        Fault(
            id=f"ssrf-protection-off-{svc}",
            what=f"{svc}'s Smokescreen allows the whole cvat_cvat range",
            inject=lambda twin, svc=svc: _allow_stack_network(twin, svc),
            revert=_restore(svc),
            fails={
                f"gateway/smokescreen-refuses-private-address[{svc}]": (
                    "covers the stack network",
                    "SSRF protection is off",
                ),
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
            "services/cvat-accepts-bridge-credentials": (
                "CVAT refuses the credentials",
                "CVAT_USER='admin', CVAT_PWD=[REDACTED]",
            ),
        },
    ),
    Fault(
        id="bridge-user-not-admin",
        what="the bridge logs in as a regular CVAT user",
        inject=_bridge_as_regular_user,
        revert=_restore("bridge"),
        fails={
            "services/bridge-user-is-admin": (
                "'criobe-fault-regular' is not in CVAT's admin group",
            )
        },
    ),
    Fault(
        id="bridge-superuser-outside-admin-group",
        what="the bridge's user is a superuser outside CVAT's admin group",
        inject=lambda twin: _psql(twin, ADMIN_GROUP_SQL["take"]),
        revert=lambda twin: _psql(twin, ADMIN_GROUP_SQL["give"]),
        fails={
            "services/bridge-user-is-admin": (
                "'admin' is not in CVAT's admin group",
                "is_superuser=True",
            )
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
            "services/bridge-cvat-url-accepted": (
                "'cvat_server' contains '_'",
                "DisallowedHost",
            ),
        },
    ),
    Fault(
        id="bridge-old-cvat-sdk",
        what="the bridge runs with cvat-sdk 2.22.0 (PYTHONPATH=/opt/cvat-sdk-old)",
        inject=_recreate(
            "bridge", '  bridge:\n    environment:\n      PYTHONPATH: "/opt/cvat-sdk-old"\n'
        ),
        revert=_restore("bridge"),
        fails={
            "services/bridge-cvat-sdk-supports-server": (
                "cvat-sdk 2.22",
                "/opt/cvat-sdk-old",
                "the server is 2.29.0",
            ),
        },
    ),
    Fault(
        id="proxy-pins-lab-organization",
        what="a proxy in front of CVAT adds X-Organization of a lab organization whose webhook "
        "watches every task and job: the suite's objects would set off the lab's pipeline",
        inject=_proxy_pins_lab_organization,
        revert=_lab_organization_removed,
        fails={
            "services/scratch-sets-off-no-lab-webhook": (
                "whose webhook(s) of the lab would fire",
                "lab-pipeline.example",
                "X-Organization",
            ),
        },
        skips={"services/webhooks-worker-takes-jobs": "scratch-sets-off-no-lab-webhook"},
    ),
    Fault(
        id="webhooks-worker-frozen",
        what="the RQ worker in cvat_worker_webhooks frozen (SIGSTOP): alive, takes no job",
        inject=lambda twin: _signal_worker(twin, "STOP"),
        revert=lambda twin: (_signal_worker(twin, "CONT"), twin.restore("cvat_worker_webhooks")),
        fails={
            "services/webhooks-worker-takes-jobs": (
                "no RQ worker took the update:project job",
                "state T",
            ),
        },
    ),
    Fault(
        id="cvat-db-stopped",
        what="cvat_db stopped (services layer alone: the containers layer would catch it first)",
        inject=lambda twin: twin.container("cvat_db").stop(timeout=10),
        revert=_restore("cvat_db"),
        layers=("services",),
        fails={
            "services/cvat-health-working": "DatabaseBackend",
            "services/cvat-accepts-bridge-credentials": ("server error", "DatabaseBackend"),
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
            "services/cvat-version": ("version '2.31.0'", "'2.29.0'"),
            "services/bridge-cvat-sdk-supports-server": (
                "supports CVAT 2.29, 2.30",
                "the server is 2.31.0",
            ),
        },
    ),
    # --- webhooks (alone: the gateway layer would catch these first) ---
    Fault(
        id="webhooks-worker-allowance-missing-events",
        what="SMOKESCREEN_OPTS empty on cvat_worker_webhooks: ping reaches the bridge, events 407",
        inject=_smokescreen_opts({"cvat_worker_webhooks": ""}),
        revert=_restore("cvat_worker_webhooks"),
        layers=("webhooks",),
        fails={
            "webhooks/job-update-delivered": (
                "delivered with 407",
                "while the ping from cvat_server was delivered with 200",
            ),
        },
    ),
    Fault(
        id="cvat-server-allowance-missing-ping",
        what="SMOKESCREEN_OPTS empty on cvat_server: pings get Smokescreen's 407",
        inject=_smokescreen_opts({"cvat_server": ""}),
        revert=_restore("cvat_server"),
        layers=("webhooks",),
        fails={
            "webhooks/ping-reaches-bridge": (
                "did not come back from the bridge",
                "Smokescreen refused it",
            )
        },
    ),
    Fault(
        id="bridge-health-get-only",
        what="the bridge's /health accepts GET only (405 to the ping's POST)",
        inject=_recreate(
            "bridge", '  bridge:\n    environment:\n      BRIDGE_TWIN_HEALTH_METHODS: "GET"\n'
        ),
        revert=_restore("bridge"),
        fails={"webhooks/ping-shows-200": ("shows 405", "GET only")},
    ),
    Fault(
        id="cvat-server-allows-bridge-port-only",
        what="SMOKESCREEN_OPTS=--allow-address=172.17.0.1:8000 on cvat_server (valid, but only 8000)",
        inject=_smokescreen_opts({"cvat_server": "--allow-address=172.17.0.1:8000"}),
        revert=_restore("cvat_server"),
        fails={
            "webhooks/signed-delivery-verifies": "only port 8000 of the gateway",
        },
    ),
    # --- functions, reachability, inference, latency ---
    Fault(
        id="function-without-network-attribute",
        what="pth-yolo-gridpose deployed without spec.platform.attributes.network (default bridge)",
        inject=lambda twin: twin.redeploy("pth-yolo-gridpose", edit=_without_network),
        revert=_restore_functions("pth-yolo-gridpose"),
        fails={
            "network/on-stack-network[nuclio-nuclio-pth-yolo-gridpose]": (
                "is on bridge",
                "spec.platform.attributes.network: cvat_cvat",
            )
        },
    ),
    Fault(
        id="function-missing",
        what="pth-yolo-gridpose deleted from the dashboard",
        inject=_function_removed,
        revert=_restore_functions(),
        fails={
            "containers/exists[nuclio-nuclio-pth-yolo-gridpose]": (
                "nuclio-nuclio-pth-yolo-gridpose",
                "nuctl deploy",
            )
        },
    ),
    Fault(
        id="function-missing-functions-layer",
        what="pth-yolo-gridpose deleted (functions layer alone: the containers layer names "
        "the missing container first)",
        inject=_function_removed,
        revert=_restore_functions(),
        layers=("functions",),
        fails={"functions/deployed-and-ready[pth-yolo-gridpose]": "is not deployed"},
    ),
    Fault(
        id="nuclio-project-missing",
        what="project cvat deleted, its functions redeployed into project default",
        inject=_project_removed,
        revert=_project_restored,
        fails={
            "functions/nuclio-project-exists": ("has no project 'cvat'", "nuctl create project")
        },
    ),
    Fault(
        id="nuclio-dashboard-stopped",
        what="the dashboard container stopped (functions layer alone: the containers layer "
        "names it first)",
        inject=lambda twin: twin.container("nuclio").stop(timeout=5),
        revert=_restore("nuclio"),
        layers=("functions",),
        fails={
            "functions/nuclio-version": "cannot reach the Nuclio dashboard",
            "functions/nuclio-project-exists": "cannot reach the Nuclio dashboard",
        },
    ),
    Fault(
        id="function-trigger-closed",
        what="pth-yolo-coralsegv4 healthy but its HTTP trigger never opened (processor knob)",
        inject=lambda twin: twin.redeploy(
            "pth-yolo-coralsegv4", env={"NUCLIO_TWIN_FAULT": "trigger-closed"}
        ),
        revert=_restore_functions("pth-yolo-coralsegv4"),
        fails={
            "reachability/bridge-reaches-function[pth-yolo-coralsegv4]": "got no HTTP answer",
            **{
                f"reachability/cvat-reaches-function[{src}-pth-yolo-coralsegv4]": (
                    "got no HTTP answer",
                    "docker port nuclio-nuclio-pth-yolo-coralsegv4",
                )
                for src in ("cvat_server", "cvat_worker_annotation")
            },
        },
    ),
    Fault(
        id="annotation-worker-without-host-docker-internal",
        what="cvat_worker_annotation without the serverless overlay's host.docker.internal",
        inject=_recreate(
            "cvat_worker_annotation", "  cvat_worker_annotation:\n    extra_hosts: !reset []\n"
        ),
        revert=_restore("cvat_worker_annotation"),
        fails={
            f"reachability/cvat-reaches-function[cvat_worker_annotation-{fn}]": (
                "extra_hosts has no host.docker.internal entry",
            )
            for fn in (
                "pth-yolo-gridcorners",
                "pth-yolo-gridpose",
                "pth-yolo-coralsegv4",
                "pth-facebookresearch-sam-vit-h",
            )
        },
    ),
    Fault(
        id="bridge-nuclio-host-wrong",
        what="the bridge's NUCLIO_HOST names a host that does not exist",
        inject=_recreate(
            "bridge", '  bridge:\n    environment:\n      NUCLIO_HOST: "nuclio_dashboard"\n'
        ),
        revert=_restore("bridge"),
        fails={"reachability/bridge-reaches-dashboard": ("NUCLIO_HOST=nuclio_dashboard",)},
    ),
    Fault(
        id="function-container-restarted-port-moved",
        what="docker restart nuclio-nuclio-pth-lama (published on a random port): Docker "
        "publishes another port, the dashboard keeps the old httpPort and says ready "
        "(functions layer alone: the inference and latency layers, which call it at the old "
        "port, fail on it too)",
        inject=_restart_function_container("pth-lama"),
        revert=_restore_functions("pth-lama"),
        layers=("functions",),
        fails={
            "functions/http-port-is-published[pth-lama]": (
                "the port moved: the dashboard says",
                "the container publishes",
                "redeploy pth-lama",
            )
        },
    ),
    Fault(
        id="function-without-restart-policy",
        what="pth-lama redeployed from a function.yaml without "
        "spec.platform.attributes.restartPolicy: Nuclio 1.13 gives its container none",
        inject=lambda twin: twin.redeploy("pth-lama", edit=_without_restart_policy),
        revert=_restore_functions("pth-lama"),
        layers=("functions",),
        fails={
            "functions/container-restarts-with-docker[pth-lama]": (
                "restart policy 'no'",
                "spec.platform.attributes.restartPolicy",
            )
        },
    ),
    Fault(
        id="function-weights-removed",
        what="the weights file pth-yolo-gridcorners' function.yaml names (spec.env MODEL_PATH) "
        "removed inside its running container (functions layer alone: the twin's function "
        "never reads it, so nothing else can notice)",
        inject=lambda twin: twin.exec(
            "nuclio-nuclio-pth-yolo-gridcorners",
            "rm",
            "-f",
            "/opt/nuclio/weights/gridcorners-yolo11m-pose.pt",
        ),
        revert=_restore_functions("pth-yolo-gridcorners"),
        layers=("functions",),
        fails={
            "functions/model-weights-present[pth-yolo-gridcorners]": (
                "no weights file at /opt/nuclio/weights/gridcorners-yolo11m-pose.pt",
                "spec.env MODEL_PATH",
                "No such file or directory",
            )
        },
    ),
    Fault(
        id="function-event-timeout-below-its-time",
        what="pth-yolo-gridpose takes 2 s more per call and its eventTimeout is 4s: under the "
        "profile's margin of 2 (latency layer alone: nothing else reads the timeouts; its CPU "
        "budget raised to 10 s, so that only the timeouts judge the delay)",
        inject=lambda twin: twin.redeploy(
            "pth-yolo-gridpose",
            env={"CRIOBE_TWIN_DELAY_S": "2"},
            # A call takes 2.2-2.7 s on the 1920x1920 image: under 4 s, so none is cut off,
            # while max(first call, p95) x 2 is over it.
            edit=_event_timeout("4s"),
        ),
        revert=_restore_functions("pth-yolo-gridpose"),
        profile_edit=lambda t: _few_latency_calls(
            t, ("budget_gpu_s = 2.3\nbudget_cpu_s = 2.5", "budget_gpu_s = 2.3\nbudget_cpu_s = 10")
        ),
        layers=("latency",),
        fails={
            "latency/timeouts-fit[pth-yolo-gridpose]": (
                "eventTimeout 4s (4 s) is below what pth-yolo-gridpose needs",
                "× margin 2",
                "timed on a 1920×1920 image",
                "spec.eventTimeout",
            )
        },
    ),
    Fault(
        id="bridge-auto-ann-timeout-below-the-functions-time",
        what="AUTO_ANN_TIMEOUT=0.05 in the bridge's environment: below every function it calls "
        "(latency layer alone: the e2e's stages would stall on it)",
        inject=_bridge_fault({"AUTO_ANN_TIMEOUT": "0.05"}),
        revert=_restore("bridge"),
        profile_edit=_few_latency_calls,
        layers=("latency",),
        fails={
            f"latency/timeouts-fit[{name}]": ("AUTO_ANN_TIMEOUT 0.05 s is below", "bridge/.env")
            for name in BRIDGE_CALLED
        },
    ),
    *[
        Fault(
            id=f"function-{fault}",
            what=f"{name} answering with its '{fault}' fault knob",
            inject=_function_fault(name, fault),
            revert=_restore_functions(name),
            layers=FUNCTION_CONTAINER_LAYERS,
            fails={f"{check}[{name}]": toks},
            tags=("unit-proven",) if fault in UNIT_PROVEN_KNOBS else (),
        )
        for name, fault, check, toks in [
            (
                "pth-yolo-gridcorners",
                "three-corners",
                "inference/output-follows-contract",
                ("missing 4",),
            ),
            (
                "pth-yolo-gridcorners",
                "counter-clockwise",
                "inference/output-follows-contract",
                ("counter-clockwise",),
            ),
            (
                "pth-yolo-gridcorners",
                "confidence-fraction",
                "inference/output-follows-contract",
                ("is not an integer-percent string",),
            ),
            (
                "pth-yolo-gridcorners",
                "unknown-label",
                "inference/output-follows-contract",
                ("labels ['corner']",),
            ),
            (
                "pth-yolo-gridpose",
                "116-points",
                "inference/output-follows-contract",
                ("missing 117",),
            ),
            (
                "pth-lama",
                "wrong-size",
                "inference/output-follows-contract",
                ("the input was 1024x1024",),
            ),
            (
                "pth-facebookresearch-sam-vit-h",
                "short-blob",
                "inference/output-follows-contract",
                ("expected 4194304",),
            ),
            (
                "pth-yolo-coralsegv4",
                "error-500",
                "inference/answers-sample",
                ("answered 500", "CRIOBE_TWIN_FAULT=error-500"),
            ),
            (
                "pth-yolo-gridcorners",
                "offset-10px",
                "inference/accurate-on-sample",
                ("worst 10", "> 3 px"),
            ),
            (
                "pth-yolo-gridpose",
                "column-major",
                "inference/accurate-on-sample",
                ("grid mean error", "per element id"),
            ),
            (
                "pth-lama",
                "identity",
                "inference/accurate-on-sample",
                ("the strings were not removed",),
            ),
            (
                "pth-yolo-coralsegv4",
                "drift",
                "inference/matches-golden",
                ("drifted from the recorded golden",),
            ),
        ]
    ],
    Fault(
        id="function-type-miscased",
        what="pth-yolo-gridcorners redeployed with metadata.annotations.type 'Detector': "
        "CVAT's lambda manager skips a function of unknown type",
        inject=lambda twin: twin.redeploy(
            "pth-yolo-gridcorners",
            edit=lambda c: c["metadata"]["annotations"].update(type="Detector"),
        ),
        revert=_restore_functions("pth-yolo-gridcorners"),
        fails={
            "functions/cvat-lists-detector[pth-yolo-gridcorners]": (
                "does not list pth-yolo-gridcorners",
                "metadata.annotations.type",
            )
        },
    ),
    Fault(
        id="function-slower-than-its-budget",
        what="pth-yolo-gridcorners sleeps 2.8 s per call (CPU budget 2.5 s)",
        inject=lambda twin: twin.redeploy(
            "pth-yolo-gridcorners", env={"CRIOBE_TWIN_DELAY_S": "2.8"}
        ),
        revert=_restore_functions("pth-yolo-gridcorners"),
        profile_edit=_few_latency_calls,
        layers=("latency",),
        fails={
            "latency/within-budget[pth-yolo-gridcorners]": (
                "nuclio-nuclio-pth-yolo-gridcorners: p95",  # 2.8-3.1 s on a loaded machine
                "over 3 calls on a 1920×1920 image",
                "expected p95 ≤ 2.5 s (cpu budget of profile twin, for a 1920×1920 image; cpu "
                "because its container has no GPU",
            )
        },
    ),
    Fault(
        id="cvat-cannot-call-functions-online",
        what="cvat_server without host.docker.internal (inference layer alone: the "
        "reachability layer names it first)",
        inject=_recreate(
            "cvat_server",
            '  cvat_server:\n    extra_hosts: !override ["bridge.gateway:host-gateway"]\n',
        ),
        revert=_restore("cvat_server"),
        layers=("inference",),
        fails={
            f"inference/cvat-keeps-answer[{fn}]": "POST /api/lambda/functions/"
            for fn in ("pth-yolo-gridcorners", "pth-yolo-gridpose", "pth-yolo-coralsegv4")
        },
    ),
    Fault(
        id="function-spec-lacks-a-label",
        what="pth-yolo-coralsegv4 deployed with a spec (metadata.annotations.spec) without "
        "Millepora, which the project has and the function answers on the sample: CVAT "
        "drops those colonies",
        inject=lambda twin: twin.redeploy("pth-yolo-coralsegv4", edit=_spec_without("Millepora")),
        revert=_restore_functions("pth-yolo-coralsegv4"),
        fails={
            "inference/cvat-keeps-answer[pth-yolo-coralsegv4]": (
                "Millepora: the project has it but the function's spec does not declare it",
                "metadata.annotations.spec",
            )
        },
    ),
    Fault(
        id="gpu-required-on-the-cpu",
        what='the profile says pth-yolo-gridcorners gpu = "required"; the twin has no GPU '
        "(its function.yaml asks for none): a required-GPU function on the CPU",
        profile_edit=_gpu_required,
        fails={
            "functions/has-its-gpu[pth-yolo-gridcorners]": (
                "pth-yolo-gridcorners runs on the CPU",
                "asks for no GPU",
                "function-gpu.yaml",
            )
        },
        # Collected only where a function needs a GPU: on the twin's host they have none.
        skips={
            "host/nvidia-gpus": "no NVIDIA GPU on this host",
            "host/gpu-memory-held-by-functions": "no NVIDIA GPU on this host",
        },
    ),
    Fault(
        id="nvidia-driver-library-mismatch",
        what="a GPU host whose NVIDIA driver and libraries disagree (after a driver update "
        "without a reboot): nvidia-smi fails, and the profile needs a GPU",
        profile_edit=_gpu_required,
        suite_env=_driver_mismatch,
        layers=("host",),
        fails={
            "host/nvidia-gpus": (
                "nvidia-smi lists no GPU",
                "Driver/library version mismatch",
                "reboot",
            )
        },
        skips={"host/gpu-memory-held-by-functions": "Driver/library version mismatch"},
    ),
    Fault(
        id="functions-hold-most-gpu-memory",
        what="gridcorners' process holds 39,000 MiB of a 40 GiB GPU: the next model to load "
        "runs it out of memory",
        profile_edit=_gpu_required,
        suite_env=_functions_hold_the_gpu,
        layers=("host",),
        fails={
            "host/gpu-memory-held-by-functions": (
                "hold 39000 MiB of the GPUs' 40960 MiB",
                "pth-yolo-gridcorners 39000 MiB",
                "gpu_memory_share_max",
            )
        },
    ),
    Fault(
        id="optional-sam-absent",
        what="the optional SAM function not deployed: its checks skip, saying so, and a strict "
        "run accepts it (the profile does not ask for SAM)",
        suite_args=("--strict-skips",),
        inject=lambda twin: _delete_function(twin, "pth-facebookresearch-sam-vit-h"),
        revert=_restore_functions(),
        fails={},
        skips={
            "*[*pth-facebookresearch-sam-vit-h]": (
                "optional",
                "which was skipped",
                "no such container",
            )
        },
    ),
    *E2E_FAULTS,
]
