"""The local platform: deploys prebuilt function images as containers through the Docker socket.

    platform = Platform(Settings.from_env(), DockerAPI())
    platform.start()                                    # default project, rediscovery, checker
    platform.create_function(config)                    # raises NuclioError, or returns once
                                                        # the record says "building"
    platform.functions("nuclio", project="cvat")        # [{metadata, spec, status}, ...]

Follows nuclio/nuclio@1.13.0: pkg/platform/local/platform.go (container name
nuclio-<namespace>-<name>, labels, network, restart policy, port, readiness wait, invocation
URLs, the periodic healthiness check) and pkg/platform/abstract/platform.go (enrichment and
validation: the project must exist, reserved names, trigger names, deletion rules).
Building images from source is not twinned: a function needs spec.image.
"""

import base64
import contextlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field

from . import DEFAULT_NAMESPACE
from .dockerapi import DockerAPI, DockerError
from .errors import NuclioError, bad_request, not_found, precondition_failed

PROJECT_LABEL = "nuclio.io/project-name"
FUNCTION_LABEL = "nuclio.io/function-name"
INTERNAL_LABELS = (
    "nuclio.io/platform",
    "nuclio.io/namespace",
    FUNCTION_LABEL,
    "nuclio.io/function-spec",
    "nuclio.io/annotations",
)
FUNCTION_HTTP_PORT = 8080
PROCESSOR_CONFIG_DIR = "/etc/nuclio/config/processor"
UNHEALTHY_MESSAGE = "Function is not healthy"
RESERVED_NAMES = ("dashboard", "controller", "dlx", "scaler")
PROVISIONED = ("ready", "error", "unhealthy", "scaledToZero", "imported")


def _env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "t", "true", "yes", "y")


def _env_seconds(name, default):
    value = os.environ.get(name)
    return parse_duration(value) if value else default


@dataclass
class Settings:
    default_namespace: str = DEFAULT_NAMESPACE
    store_dir: str = "/etc/nuclio/store"
    health_check_enabled: bool = True
    health_check_interval: float = 30.0
    health_check_timeout: float = 5.0
    # Nuclio's local GetNamespaces() answers ["nuclio"]: only that namespace is checked.
    health_check_namespaces: tuple = ("nuclio",)
    readiness_timeout: float = 120.0
    invocation_timeout: float = 60.0
    external_ip: str = field(default_factory=lambda: os.environ.get("NUCLIO_TEST_HOST", ""))

    @classmethod
    def from_env(cls):
        namespaces = os.environ.get("NUCLIO_TWIN_HEALTH_CHECK_NAMESPACES", "nuclio")
        return cls(
            store_dir=os.environ.get("NUCLIO_TWIN_STORE_DIR", "/etc/nuclio/store"),
            health_check_enabled=_env_bool("NUCLIO_CHECK_FUNCTION_CONTAINERS_HEALTHINESS", True),
            health_check_interval=_env_seconds("NUCLIO_TWIN_HEALTH_CHECK_INTERVAL", 30.0),
            health_check_namespaces=tuple(n for n in namespaces.split(",") if n),
            readiness_timeout=_env_seconds("NUCLIO_TWIN_READINESS_TIMEOUT", 120.0),
        )


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text):
    """Go's time.ParseDuration for the forms people write: 120s, 1m30s, 500ms, 2h.

    >>> parse_duration("1m30s"), parse_duration("500ms")
    (90.0, 0.5)
    """
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        if float(text) == 0:
            return 0.0
        raise ValueError(f"missing unit in duration {text!r}")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {text!r}")
    return total


def go_json(obj):
    """JSON as Go's encoding/json writes it: compact, HTML characters escaped, UTF-8 kept."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def go_time_now():
    """time.Now() marshalled to JSON (RFC 3339 with trimmed nanoseconds), in UTC."""
    now = time.time()
    seconds = int(now)
    frac = f"{now - seconds:.9f}"[2:].rstrip("0")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{frac}Z" if frac else f"{stamp}Z"


def container_name(namespace, name):
    return f"nuclio-{namespace}-{name}"


def _quantity(value, cpu):
    """A Kubernetes quantity ("500m", "2", "512Mi", "1G") as cores or bytes."""
    text = str(value).strip()
    suffixes = {
        "m": 1e-3,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "k": 1e3,
        "K": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
    }
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * suffixes[suffix]
    return float(text)


class Platform:
    def __init__(self, settings, docker=None, store=None):
        from .store import Store

        self.settings = settings
        self.docker = docker or DockerAPI()
        self.store = store or Store(settings.store_dir)
        self._deploy_lock = threading.Lock()
        self._stop = threading.Event()

    # lifecycle

    def start(self):
        self.ensure_default_project()
        self.rediscover()
        if self.settings.health_check_enabled:
            threading.Thread(target=self._health_loop, name="healthiness", daemon=True).start()

    def stop(self):
        self._stop.set()

    def ensure_default_project(self):
        namespace = self.settings.default_namespace
        if self.store.project(namespace, "default") is None:
            self.store.put_project(
                {
                    "metadata": {"name": "default", "namespace": namespace},
                    "spec": {},
                    "status": {"updatedAt": go_time_now()},
                }
            )

    # projects (pkg/platform/local/platform.go CreateProject/DeleteProject)

    def projects(self, namespace, name=None):
        return self.store.projects(namespace, name)

    def create_project(self, project):
        meta = project["metadata"]
        if not meta.get("name"):
            raise bad_request("Project name cannot be empty").wrap(
                "Failed to validate a project configuration"
            )
        if (
            not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"])
            or len(meta["name"]) > 63
        ):
            raise bad_request(
                "Project name must adhere to Kubernetes naming conventions. Errors: a lowercase "
                "RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                "must start and end with an alphanumeric character (e.g. 'my-name',  or "
                "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ).wrap("Failed to validate a project configuration")
        # The local store overwrites: creating an existing project is not a conflict there.
        record = {
            "metadata": meta,
            "spec": project.get("spec") or {},
            "status": {"updatedAt": go_time_now()},
        }
        self.store.put_project(record)
        return record

    def delete_project(self, meta, strategy):
        name, namespace = meta.get("name", ""), meta["namespace"]
        if name == "default":
            raise precondition_failed("Cannot delete the default project").wrap(
                "Failed to validate delete project options"
            )
        if name == "":
            raise bad_request("Project name cannot be empty").wrap(
                "Failed to validate delete project options"
            )
        exists = self.store.project(namespace, name) is not None
        functions = self.store.functions(namespace, project=name)
        if strategy in ("restricted", "check") and exists and functions:
            raise precondition_failed("Project contains functions").wrap(
                "Failed to validate delete project options"
            )
        if strategy == "check":
            return
        if strategy == "cascading":
            for function in functions:
                self._delete_function_resources(namespace, function["metadata"]["name"])
        if not self.store.delete_project(namespace, name):
            raise (
                not_found("Not Found")
                .wrap(f"Failed to delete project {name} from namespace {namespace}")
                .wrap("Failed to delete project")
            )

    # functions

    def functions(self, namespace, project=None, name=None):
        return self.store.functions(namespace, project=project, name=name)

    def function(self, namespace, name):
        return self.store.function(namespace, name)

    def enrich(self, config):
        """EnrichFunctionConfig: project label, runtime alias, replicas, triggers."""
        meta, spec = config["metadata"], config.setdefault("spec", {})
        # functionconfig.Spec.EventTimeout is a string without omitempty: a spec without one
        # is listed with "eventTimeout": "", and the processor then starts no event-timeout
        # watcher at all (cmd/processor/app/processor.go): no default duration exists.
        spec.setdefault("eventTimeout", "")
        labels = meta.get("labels") or {}
        if not labels.get(PROJECT_LABEL):
            labels[PROJECT_LABEL] = "default"
        meta["labels"] = labels
        if spec.get("runtime") == "python":
            spec["runtime"] = "python:3.9"
        if spec.get("minReplicas") is None and spec.get("maxReplicas") is not None:
            spec["minReplicas"] = spec["maxReplicas"]
        if spec.get("maxReplicas") is None and spec.get("minReplicas") is not None:
            spec["maxReplicas"] = spec["minReplicas"]
        triggers = spec.get("triggers") or {}
        http_triggers = [t for t in triggers.values() if (t or {}).get("kind") == "http"]
        if not http_triggers and not spec.get("disableDefaultHTTPTrigger"):
            triggers["default-http"] = {
                "class": "",
                "kind": "http",
                "name": "default-http",
                "numWorkers": 1,
            }
        for key, trigger in triggers.items():
            trigger.setdefault("class", "")
            trigger.setdefault("kind", "")
            if not trigger.get("name"):
                trigger["name"] = key
            if not trigger.get("numWorkers") and trigger.get("maxWorkers"):
                trigger["numWorkers"] = trigger["maxWorkers"]
            if trigger["kind"] in ("http", "v3ioStream") and not trigger.get("numWorkers"):
                trigger["numWorkers"] = 1
        spec["triggers"] = triggers
        return config

    def validate(self, config):
        """ValidateFunctionConfig, in Nuclio's order."""
        meta, spec = config["metadata"], config["spec"]
        wraps = (
            "Failed to validate a function configuration",
            "Failed to enrich and validate a function configuration",
        )

        def fail(err):
            for message in wraps:
                err.wrap(message)
            raise err

        if meta["name"] in RESERVED_NAMES:
            fail(
                precondition_failed(f"Function name {meta['name']} is reserved and cannot be used.")
            )
        for key, trigger in spec.get("triggers", {}).items():
            if key == "":
                fail(bad_request("Trigger key can not be empty").wrap("Triggers validation failed"))
            if key != trigger.get("name"):
                fail(
                    bad_request(
                        f"Trigger key and name mismatch ({key} != {trigger.get('name')})"
                    ).wrap("Triggers validation failed")
                )
        project = meta["labels"][PROJECT_LABEL]
        if self.store.project(meta["namespace"], project) is None:
            fail(
                precondition_failed("Project does not exist").wrap(
                    "Project existence validation failed"
                )
            )

    def create_function(self, config, update=False):
        """CreateFunction up to the "building" record; the deployment goes on in a thread."""
        meta = config["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        with self._deploy_lock:
            self.enrich(config)
            self.validate(config)
            existing = self.store.function(namespace, name)
            if existing and existing["status"].get("state") not in PROVISIONED:
                raise precondition_failed(
                    "Function cannot be updated when existing function is being provisioned"
                ).wrap(
                    "Failed to validate a function configuration against an existing configuration"
                )
            record = {"metadata": meta, "spec": config["spec"], "status": {"state": "building"}}
            self.store.put_function(record)
        threading.Thread(
            target=self._deploy, args=(record,), name=f"deploy-{name}", daemon=True
        ).start()
        return record

    def redeploy_function(self, namespace, name):
        record = self.store.function(namespace, name)
        if record is None:
            raise not_found("Function not found").wrap("Failed to get get function")
        if not record["spec"].get("image"):
            raise precondition_failed("No image field in function config spec, unable to redeploy")
        self.store.update_status(namespace, name, {"state": "building"})
        record["status"] = {"state": "building"}
        threading.Thread(target=self._deploy, args=(record,), daemon=True).start()

    def delete_function(self, meta, ignore_state=False):
        namespace, name = meta["namespace"], meta["name"]
        record = self.store.function(namespace, name)
        if record is None:
            return  # Nuclio's delete is idempotent
        if not ignore_state and record["status"].get("state") not in PROVISIONED:
            raise precondition_failed("Function is being provisioned and cannot be deleted").wrap(
                "Failed to validate function-deletion options"
            )
        self._delete_function_resources(namespace, name)

    def _delete_function_resources(self, namespace, name):
        self.store.delete_function(namespace, name)
        for container in self.docker.list_containers(
            all_=True,
            labels={
                "nuclio.io/platform": "local",
                "nuclio.io/namespace": namespace,
                FUNCTION_LABEL: name,
            },
        ):
            self.docker.remove(container["Id"])
        self.docker.remove_volume(container_name(namespace, name))

    # deployment (deployFunction)

    def _deploy(self, record):
        meta, spec = record["metadata"], record["spec"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            status = self._run_function_container(meta, spec)
        except (NuclioError, DockerError) as exc:
            err = exc if isinstance(exc, NuclioError) else NuclioError(500, str(exc))
            status = {"state": "error", "message": err.stack()}
        except Exception as exc:  # the record must never stay "building" because of a bug
            status = {"state": "error", "message": f"\nError - {exc}\n"}
        self.store.update_status(namespace, name, status)

    def _run_function_container(self, meta, spec):
        namespace, name = meta["namespace"], meta["name"]
        cname = container_name(namespace, name)
        previous_port = self._remove_previous_containers(cname)
        image = spec.get("image")
        if not image:
            raise bad_request("The twin deploys prebuilt images only: spec.image is empty").wrap(
                "Failed to build function"
            )
        self._write_processor_config(meta, spec, image)
        port = self._resolve_http_port(spec, previous_port)
        bindings = {}
        if port == -1:
            bindings = {f"{FUNCTION_HTTP_PORT}/tcp": [{"HostIp": "", "HostPort": ""}]}
        elif port > 0:
            # An explicit port is bound on IPv4 only: Docker 20.10 gives the IPv4 and IPv6 sides
            # of a random publication different ports, so reusing the reported (IPv4) port on
            # both families can collide with another container's IPv6 side. Nuclio binds both.
            bindings = {f"{FUNCTION_HTTP_PORT}/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        attributes = (spec.get("platform") or {}).get("attributes") or {}
        host_config = {
            "PortBindings": bindings,
            "NetworkMode": self._attribute(attributes, "network") or "default",
            "RestartPolicy": self._restart_policy(attributes),
            "Mounts": [
                {
                    "Type": "volume",
                    "Source": cname,
                    "Target": PROCESSOR_CONFIG_DIR,
                    "ReadOnly": True,
                }
            ],
        }
        host_config.update(self._resources(spec))
        config = {
            "Image": image,
            "Env": [
                f"{e['name']}={e.get('value', '')}" for e in spec.get("env") or [] if e.get("name")
            ],
            "Labels": self._labels(meta, spec),
            "ExposedPorts": {f"{FUNCTION_HTTP_PORT}/tcp": {}},
            "HostConfig": host_config,
        }
        container_id = self._create_and_start(cname, config)
        timeout = spec.get("readinessTimeoutSeconds") or self.settings.readiness_timeout
        problem = self._await_health(container_id, float(timeout))
        if problem:
            try:
                logs = self.docker.logs(container_id)
                context = f"Function wasn't ready in time. Logs:\n{logs}"
            except DockerError as exc:
                context = f"Function wasn't ready in time (couldn't fetch logs: {exc})"
            raise NuclioError(500, problem).wrap(context)
        return self._status_from_container(self.docker.inspect(container_id), "ready")

    def _create_and_start(self, cname, config):
        try:
            container_id = self.docker.create_container(cname, config)
            self.docker.start(container_id)
            return container_id
        except DockerError as exc:
            raise (
                NuclioError(500, str(exc))
                .wrap("Failed to run a Docker container")
                .wrap("Failed to deploy function")
            ) from exc

    def _remove_previous_containers(self, cname):
        previous = 0
        for container in self.docker.list_containers(all_=True, name=cname):
            previous = self._host_port(self.docker.inspect(container["Id"])) or previous
            self.docker.remove(container["Id"])
        return previous

    def _write_processor_config(self, meta, spec, image):
        """The processor reads its configuration from a per-function volume, as in Nuclio.

        Nuclio writes processor.yaml with an alpine helper; the twin has no registry, so the
        function's own image runs the same one-liner. The file holds JSON, which is YAML.
        """
        cname = container_name(meta["namespace"], meta["name"])
        self.docker.create_volume(cname)
        contents = base64.b64encode(go_json({"metadata": meta, "spec": spec}).encode()).decode()
        helper = f"{cname}-processor-config"
        with contextlib.suppress(DockerError):
            self.docker.remove(helper)
        try:
            helper_id = self.docker.create_container(
                helper,
                {
                    "Image": image,
                    "User": "0",
                    "Entrypoint": ["/bin/sh", "-c"],
                    "Cmd": [
                        'printf %s "$NUCLIO_CONTENTS" | base64 -d | install -m 777 /dev/stdin '
                        f"{PROCESSOR_CONFIG_DIR}/processor.yaml"
                    ],
                    "Env": [f"NUCLIO_CONTENTS={contents}"],
                    "HostConfig": {
                        "NetworkMode": "none",
                        "Mounts": [
                            {"Type": "volume", "Source": cname, "Target": PROCESSOR_CONFIG_DIR}
                        ],
                    },
                },
            )
        except DockerError as exc:
            raise (
                NuclioError(500, str(exc))
                .wrap("Failed to write a processor configuration to a volume")
                .wrap("Failed to prepare a function's volume mount")
            ) from exc
        try:
            self.docker.start(helper_id)
            result = self.docker.wait(helper_id, timeout=60)
            if result.get("StatusCode") != 0:
                logs = self.docker.logs(helper_id)
                raise NuclioError(500, f"exit status {result.get('StatusCode')}: {logs}").wrap(
                    "Failed to write a processor configuration to a volume"
                )
        finally:
            self.docker.remove(helper_id)

    @staticmethod
    def _attribute(attributes, key):
        # mapstructure decodes field names case-insensitively
        for name, value in attributes.items():
            if name.lower() == key.lower():
                return value
        return None

    def _restart_policy(self, attributes):
        # No restartPolicy attribute: platformconfig's local.defaultFunctionRestartPolicy, nil
        # unless the platform configuration sets one, so `docker run` gets no --restart and
        # Docker's default "no" applies (resolveFunctionRestartPolicy, dockerclient/shell.go).
        policy = self._attribute(attributes, "restartPolicy") or {}
        name = self._attribute(policy, "name") or ""
        if not name or name == "no":
            return {"Name": "no"}
        retries = self._attribute(policy, "maximumRetryCount") or 0
        # the shell client passes a retry count only with on-failure (--restart on-failure:N)
        if name == "on-failure" and retries >= 0:
            return {"Name": name, "MaximumRetryCount": int(retries)}
        return {"Name": name}

    @staticmethod
    def _resources(spec):
        limits = (spec.get("resources") or {}).get("limits") or {}
        out = {}
        if "cpu" in limits:
            out["NanoCpus"] = int(_quantity(limits["cpu"], cpu=True) * 1e9)
        if "memory" in limits:
            out["Memory"] = int(_quantity(limits["memory"], cpu=False))
        gpus = limits.get("nvidia.com/gpu")
        if gpus is not None and _quantity(gpus, cpu=True) > 0:
            # Nuclio passes --gpus all for any positive GPU limit
            out["DeviceRequests"] = [{"Driver": "", "Count": -1, "Capabilities": [["gpu"]]}]
        return out

    @staticmethod
    def _resolve_http_port(spec, previous_port):
        """The trigger's attributes.port, else no publishing if asked, else the previous port,
        else a random one (-1); -2 means not published (RunOptionsNoPort)."""
        for trigger in (spec.get("triggers") or {}).values():
            if trigger.get("kind") == "http":
                port = (trigger.get("attributes") or {}).get("port")
                if isinstance(port, (int, float)) and not isinstance(port, bool) and int(port):
                    return int(port)
        for trigger in (spec.get("triggers") or {}).values():
            if trigger.get("kind") == "http":
                if (trigger.get("attributes") or {}).get("disablePortPublishing"):
                    return -2
                annotations = trigger.get("annotations") or {}
                if annotations.get("nuclio.io/disable-port-publishing") == "true":
                    return -2
        return previous_port or -1

    @staticmethod
    def _labels(meta, spec):
        labels = {
            "nuclio.io/platform": "local",
            "nuclio.io/namespace": meta["namespace"],
            FUNCTION_LABEL: meta["name"],
            "nuclio.io/function-spec": go_json(spec),
        }
        labels.update(meta.get("labels") or {})
        if meta.get("annotations") is not None:
            labels["nuclio.io/annotations"] = go_json(meta["annotations"])
        return labels

    def _await_health(self, container_id, timeout):
        """AwaitContainerHealth: None once healthy, else why not (exited, dead, timed out)."""
        deadline = time.monotonic() + timeout
        interval = 0.1
        while True:
            try:
                state = self.docker.inspect(container_id)["State"]
            except DockerError as exc:
                if exc.status == 404:
                    return "Container seems to be dead"
                state = {}
            if (state.get("Health") or {}).get("Status") == "healthy":
                return None
            if state.get("Status") == "exited":
                return f"Container exited with status: {state.get('ExitCode')}"
            if state.get("Status") == "dead":
                return "Container seems to be dead"
            if time.monotonic() >= deadline:
                return "Container wasn't healthy within the given timeout"
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 2, 1.0)

    @staticmethod
    def _host_port(info):
        ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
        for binding in ports.get(f"{FUNCTION_HTTP_PORT}/tcp") or []:
            if binding.get("HostPort"):
                return int(binding["HostPort"])
        return 0

    def _status_from_container(self, info, state):
        port = self._host_port(info)
        networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
        # docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' joins
        # the addresses of all networks (sorted by name) without a separator
        addresses = "".join(networks[n].get("IPAddress", "") for n in sorted(networks))
        external = []
        if self.settings.external_ip and self.settings.external_ip != "172.17.0.1":
            external.append(f"{self.settings.external_ip}:{port}")
        if port and not external:
            external.append(f"0.0.0.0:{port}")
        status = {
            "state": state,
            "httpPort": port,
            "scaleToZero": {},
            "apiGateways": [],
            "internalInvocationUrls": [f"{addresses}:{FUNCTION_HTTP_PORT}"],
            "externalInvocationUrls": external,
        }
        if state == "unhealthy":
            status["message"] = UNHEALTHY_MESSAGE
        if not port:
            del status["httpPort"]
        return status

    # rediscovery: the twin's store may be gone, the containers' labels hold the configs

    def rediscover(self):
        for container in self.docker.list_containers(
            all_=True, labels={"nuclio.io/platform": "local"}
        ):
            labels = container.get("Labels") or {}
            namespace, name = labels.get("nuclio.io/namespace"), labels.get(FUNCTION_LABEL)
            if not namespace or not name or self.store.function(namespace, name):
                continue
            try:
                info = self.docker.inspect(container["Id"])
                spec = json.loads(labels.get("nuclio.io/function-spec") or "{}")
            except (DockerError, ValueError):
                continue
            image_labels = {}
            with contextlib.suppress(DockerError):
                image_labels = (
                    self.docker.inspect_image(info["Image"])["Config"].get("Labels") or {}
                )
            meta_labels = {
                k: v
                for k, v in labels.items()
                if k not in INTERNAL_LABELS and image_labels.get(k) != v
            }
            meta = {"name": name, "namespace": namespace, "labels": meta_labels}
            if "nuclio.io/annotations" in labels:
                with contextlib.suppress(ValueError):
                    meta["annotations"] = json.loads(labels["nuclio.io/annotations"])
            healthy = ((info.get("State") or {}).get("Health") or {}).get("Status") == "healthy"
            status = self._status_from_container(info, "ready" if healthy else "unhealthy")
            self.store.put_function({"metadata": meta, "spec": spec, "status": status})

    # the periodic healthiness check (ValidateFunctionContainersHealthiness)

    def _health_loop(self):
        while not self._stop.wait(self.settings.health_check_interval):
            try:
                self.check_health()
            except Exception as exc:  # keep checking; Nuclio logs and goes on
                print(json.dumps({"level": "warn", "message": f"healthiness check: {exc}"}))

    def check_health(self):
        for namespace in self.settings.health_check_namespaces:
            for record in self.store.functions(namespace):
                status = record["status"]
                state = status.get("state")
                was_unhealthy = (
                    state in ("error", "unhealthy") and status.get("message") == UNHEALTHY_MESSAGE
                )
                if state != "ready" and not was_unhealthy:
                    continue
                name = record["metadata"]["name"]
                running = self.docker.list_containers(name=container_name(namespace, name))
                healthy = bool(running) and (
                    self._await_health(running[0]["Id"], self.settings.health_check_timeout) is None
                )
                if state == "ready" and not healthy:
                    status = dict(status, state="unhealthy", message=UNHEALTHY_MESSAGE)
                    self.store.update_status(namespace, name, status, only_if=("ready",))
                elif was_unhealthy and healthy:
                    status = dict(status, state="ready")
                    status.pop("message", None)
                    self.store.update_status(namespace, name, status, only_if=(state,))

    # invocation (pkg/platform/abstract/invoker.go)

    def resolve_invocation(self, namespace, name, url):
        record = self.store.function(namespace, name)
        if record is None:
            raise not_found(f"Function not found: {name} @ {namespace}").wrap(
                "Failed to resolve function"
            )
        status = record["status"]
        urls = list(status.get("internalInvocationUrls") or []) + list(
            status.get("externalInvocationUrls") or []
        )
        if not url and urls:
            url = urls[0]
        if not url:
            raise NuclioError(500, "Invocation URL is required").wrap(
                "Failed to resolve invocation url"
            )
        if url not in urls:
            raise bad_request(f"Invalid function url {url}").wrap(
                "Failed to resolve invocation url"
            )
        return record, url.rstrip("/")
