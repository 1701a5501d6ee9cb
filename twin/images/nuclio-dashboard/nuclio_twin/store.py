"""Function and project records, kept as one JSON file per resource like Nuclio's local store.

    store = Store("/etc/nuclio/store")
    store.put_project({"metadata": {"name": "cvat", "namespace": "nuclio"}, "spec": {}})
    store.put_function({"metadata": {...}, "spec": {...}, "status": {"state": "building"}})
    store.functions("nuclio", project="cvat")     # [record, ...] sorted by name

Nuclio 1.13's local platform (pkg/platform/local/client/store.go) writes the same layout,
<dir>/{functions,projects}/<namespace>/<name>.json, into the Docker volume
nuclio-local-storage through a helper container; the twin writes it where the CI overlay
mounts that volume, so the records outlive the dashboard's container as Nuclio's do. Deployed
functions are then rediscovered from their containers' labels
(local_platform.Platform.rediscover).
"""

import contextlib
import copy
import json
import os
import threading


class Store:
    def __init__(self, root):
        self.root = root
        self.lock = threading.RLock()
        self._functions = {}  # (namespace, name) -> record
        self._projects = {}
        self._load()

    def _path(self, kind, namespace, name):
        return os.path.join(self.root, kind, namespace, f"{name}.json")

    def _load(self):
        for kind, target in (("functions", self._functions), ("projects", self._projects)):
            base = os.path.join(self.root, kind)
            if not os.path.isdir(base):
                continue
            for namespace in sorted(os.listdir(base)):
                for filename in sorted(os.listdir(os.path.join(base, namespace))):
                    if not filename.endswith(".json"):
                        continue
                    with open(os.path.join(base, namespace, filename)) as fh:
                        try:
                            record = json.load(fh)
                        except ValueError:
                            continue
                    target[(namespace, filename[: -len(".json")])] = record

    def _write(self, kind, record):
        meta = record["metadata"]
        path = self._path(kind, meta["namespace"], meta["name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, path)

    def _unlink(self, kind, namespace, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(kind, namespace, name))

    # functions

    def put_function(self, record):
        with self.lock:
            meta = record["metadata"]
            self._functions[(meta["namespace"], meta["name"])] = copy.deepcopy(record)
            self._write("functions", record)

    def function(self, namespace, name):
        with self.lock:
            record = self._functions.get((namespace, name))
            return copy.deepcopy(record) if record else None

    def functions(self, namespace=None, project=None, name=None):
        with self.lock:
            out = []
            for (ns, fn), record in sorted(self._functions.items()):
                if namespace is not None and ns != namespace:
                    continue
                if name and fn != name:
                    continue
                labels = record["metadata"].get("labels") or {}
                if project and labels.get("nuclio.io/project-name") != project:
                    continue
                out.append(copy.deepcopy(record))
            return out

    def update_status(self, namespace, name, status, only_if=None):
        """Replace a function's status; with only_if, only while its state is one of those."""
        with self.lock:
            record = self._functions.get((namespace, name))
            if record is None:
                return False
            if only_if is not None and record["status"].get("state") not in only_if:
                return False
            record["status"] = copy.deepcopy(status)
            self._write("functions", record)
            return True

    def delete_function(self, namespace, name):
        with self.lock:
            existed = self._functions.pop((namespace, name), None) is not None
            self._unlink("functions", namespace, name)
            return existed

    # projects

    def put_project(self, record):
        with self.lock:
            meta = record["metadata"]
            self._projects[(meta["namespace"], meta["name"])] = copy.deepcopy(record)
            self._write("projects", record)

    def project(self, namespace, name):
        with self.lock:
            record = self._projects.get((namespace, name))
            return copy.deepcopy(record) if record else None

    def projects(self, namespace, name=None):
        with self.lock:
            return [
                copy.deepcopy(record)
                for (ns, pn), record in sorted(self._projects.items())
                if ns == namespace and (not name or pn == name)
            ]

    def delete_project(self, namespace, name):
        with self.lock:
            existed = self._projects.pop((namespace, name), None) is not None
            self._unlink("projects", namespace, name)
            return existed
