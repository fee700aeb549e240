"""A loopback stand-in for the Kubernetes API paths that kfnb's cluster training drives, so the
real ``kubernetes`` client (its URLs, verbs, bodies and auth header) is tested without a cluster.

Served (JSON, as kube-apiserver answers):

- ``POST /apis/{group}/{version}/namespaces/{ns}/{plural}``: the body is validated against the
  official CRD schema (``tests/fixtures/crds``, made strict: an unknown field is an error) -> 201,
  or 422 (a ``Status`` naming the field), 409 (exists), 404 (a kind the "cluster" lacks:
  ``missing_kinds``);
- ``GET`` / ``DELETE`` ``.../{plural}/{name}`` -> the object / ``Status`` (DELETE also removes its
  pods and records ``propagationPolicy``);
- ``GET /api/v1/namespaces/{ns}/pods?labelSelector=k=v`` -> ``PodList`` of the pods a test put
  there (``add_pod``), matching every ``k=v``;
- ``GET /api/v1/namespaces/{ns}/pods/{name}/log?container=c`` -> the pod's log (text), 400 for a
  container the pod does not have.

Katib (``kubeflow.org/v1beta1``): ``experiments`` are validated as Katib's webhook does
(``katib_api``: the official swagger made strict, plus the webhook's rules) on POST and on
``PATCH`` (a JSON merge patch, as the client sends it: only the trial counts may change, a
completed Experiment only when Katib may restart it); ``DELETE`` also removes its trials.
``GET .../{plural}?labelSelector=k=v`` lists objects (``trials`` of an experiment by
``katib.kubeflow.org/experiment``); tests add trials with ``add_trial`` (checked against the
Trial schema) and set an object's ``status`` with ``set_status``. ``namespaces``, when set, is
the namespaces that exist (another gives 404, as creating in a missing namespace does).

Tests set the job's ``status.conditions`` with ``set_conditions`` and see every request in
``requests`` (method, path, query, headers).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema
import yaml

CRDS = Path(__file__).resolve().parents[1] / "fixtures" / "crds"
CRD_FILES = {
    "trainjobs": "trainer.kubeflow.org_trainjobs.yaml",
    "pytorchjobs": "kubeflow.org_pytorchjobs.yaml",
}
GROUP_VERSION = {
    "trainjobs": "trainer.kubeflow.org/v1alpha1",
    "pytorchjobs": "kubeflow.org/v1",
    "experiments": "kubeflow.org/v1beta1",
    "trials": "kubeflow.org/v1beta1",
}
KINDS = {"experiments": "Experiment", "trials": "Trial"}
EXPERIMENT_LABEL = "katib.kubeflow.org/experiment"


def strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def crd(plural: str) -> dict[str, Any]:
    """The official schema of ``plural`` (trainjobs, pytorchjobs), made strict."""
    loaded = yaml.safe_load((CRDS / CRD_FILES[plural]).read_text())
    return strict(loaded["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


class FakeKubernetes:
    """``with FakeKubernetes() as k8s: k8s.kubeconfig(path)`` ..."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}  # (ns, name)
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[dict[str, Any]] = []
        self.missing_kinds: set[str] = set()
        self.namespaces: set[str] | None = None  # None: every namespace exists
        self.deleted: list[tuple[str, str, str | None]] = []
        self._schemas: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeKubernetes:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what tests do --------------------------------------------------------------------------
    def kubeconfig(self, path: Path, namespace: str = "team-a", token: str = "t0ken") -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "me", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "fake",
                            "context": {"cluster": "fake", "user": "me", "namespace": namespace},
                        }
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path

    def set_conditions(self, plural: str, ns: str, name: str, *types: str, **extra: str) -> None:
        with self._lock:
            obj = self.objects[(plural, ns, name)]
            obj["status"] = {
                **(obj.get("status") or {}),
                "conditions": [
                    {
                        "type": t,
                        "status": "True",
                        "lastTransitionTime": "2026-12-07T00:00:00Z",
                        **extra,
                    }
                    for t in types
                ],
            }

    def add_pod(
        self, ns: str, name: str, labels: dict[str, str], phase: str, container: str, log: str = ""
    ) -> None:
        with self._lock:
            self.pods[(ns, name)] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "spec": {"containers": [{"name": container, "image": "x"}]},
                "status": {"phase": phase},
            }
            self.logs[(ns, name)] = log

    def set_status(self, plural: str, ns: str, name: str, **fields: Any) -> None:
        """Merge ``fields`` into the object's ``status`` (what a controller would write)."""
        with self._lock:
            obj = self.objects[(plural, ns, name)]
            obj["status"] = {**(obj.get("status") or {}), **json.loads(json.dumps(fields))}

    def add_trial(
        self,
        ns: str,
        experiment: str,
        name: str,
        params: dict[str, str],
        *conditions: str,
        observation: dict[str, str] | None = None,
        created: str = "2026-12-07T00:00:00Z",
        message: str = "",
    ) -> dict[str, Any]:
        """A Katib Trial of ``experiment`` with ``params`` (Katib's strings), its
        ``conditions`` true (the last one newest) and the ``latest`` value of each observed
        metric; checked against the Trial schema."""
        from katib_api import trial_problems

        objective = self.objects[("experiments", ns, experiment)]["spec"]["objective"]
        trial = {
            "apiVersion": "kubeflow.org/v1beta1",
            "kind": "Trial",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {EXPERIMENT_LABEL: experiment},
                "creationTimestamp": created,
            },
            "spec": {
                "objective": objective,
                "parameterAssignments": [{"name": k, "value": v} for k, v in params.items()],
                "primaryContainerName": "x",
            },
            "status": {
                "conditions": [
                    {
                        "type": c,
                        "status": "True",
                        "reason": f"Trial{c}",
                        "message": message or f"Trial is {c.lower()}",
                        "lastTransitionTime": created,
                    }
                    for c in conditions
                ]
            },
        }
        if observation is not None:
            trial["status"]["observation"] = {
                "metrics": [
                    {"name": k, "latest": v, "min": v, "max": v} for k, v in observation.items()
                ]
            }
        problems = trial_problems(trial)
        assert not problems, problems
        with self._lock:
            self.objects[("trials", ns, name)] = trial
        return trial

    def set_pod(self, ns: str, name: str, phase: str | None = None, log: str | None = None) -> None:
        with self._lock:
            if phase is not None:
                self.pods[(ns, name)]["status"]["phase"] = phase
            if log is not None:
                self.logs[(ns, name)] = log

    # -- the server -----------------------------------------------------------------------------
    def _validate(
        self, plural: str, body: dict[str, Any], old: dict[str, Any] | None = None
    ) -> str | None:
        if plural == "experiments":
            from katib_api import experiment_problems

            problems = experiment_problems(body, old)
            return "; ".join(problems) if problems else None
        if plural not in self._schemas:
            self._schemas[plural] = crd(plural)
        try:
            jsonschema.validate(body, self._schemas[plural])
        except jsonschema.ValidationError as err:
            where = ".".join(str(p) for p in err.absolute_path) or "(root)"
            return f"{where}: {err.message}"
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, body: Any, text: bool = False) -> None:
                data = (body if text else json.dumps(body)).encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain" if text else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._reply(
                    code,
                    {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure" if code >= 400 else "Success",
                        "reason": reason,
                        "message": message,
                        "code": code,
                    },
                )

            def _route(self, method: str) -> None:
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.requests.append(
                    {
                        "method": method,
                        "path": url.path,
                        "query": query,
                        "headers": dict(self.headers),
                    }
                )
                parts = url.path.strip("/").split("/")
                with fake._lock:
                    if parts[:2] == ["api", "v1"] and len(parts) >= 5 and parts[4] == "pods":
                        return self._pods(method, parts, query)
                    if parts[0] == "apis" and len(parts) in (6, 7) and parts[3] == "namespaces":
                        body = json.loads(raw) if raw else None
                        return self._custom(method, parts, body, query)
                self._status(404, "NotFound", f"no route {method} {url.path}")

            def _custom(
                self, method: str, parts: list[str], body: Any, query: dict[str, str]
            ) -> None:
                _, group, version, _, ns, plural, *rest = parts
                served = GROUP_VERSION.get(plural) == f"{group}/{version}"
                if plural in fake.missing_kinds or not served:
                    return self._status(
                        404, "NotFound", "the server could not find the requested resource"
                    )
                if fake.namespaces is not None and ns not in fake.namespaces:
                    return self._status(404, "NotFound", f'namespaces "{ns}" not found')
                if method == "GET" and not rest:
                    wanted = dict(
                        p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p
                    )
                    items = [
                        obj
                        for (pl, ons, _), obj in sorted(fake.objects.items())
                        if pl == plural
                        and ons == ns
                        and all(
                            (obj["metadata"].get("labels") or {}).get(k) == v
                            for k, v in wanted.items()
                        )
                    ]
                    kind = KINDS.get(plural, plural) + "List"
                    return self._reply(
                        200,
                        {
                            "apiVersion": f"{group}/{version}",
                            "kind": kind,
                            "metadata": {},
                            "items": items,
                        },
                    )
                if method == "POST" and not rest:
                    problem = fake._validate(plural, body)
                    if problem:
                        return self._status(
                            422, "Invalid", f"{body.get('kind')} is invalid: {problem}"
                        )
                    name = body["metadata"]["name"]
                    if (plural, ns, name) in fake.objects:
                        return self._status(
                            409, "AlreadyExists", f'{plural} "{name}" already exists'
                        )
                    obj = json.loads(json.dumps(body))
                    obj["metadata"].update(
                        uid=f"uid-{len(fake.objects)}", creationTimestamp="2026-12-07T00:00:00Z"
                    )
                    fake.objects[(plural, ns, name)] = obj
                    return self._reply(201, obj)
                if not rest:
                    return self._status(405, "MethodNotAllowed", method)
                key = (plural, ns, rest[0])
                if key not in fake.objects:
                    return self._status(404, "NotFound", f'{plural} "{rest[0]}" not found')
                if method == "GET":
                    return self._reply(200, fake.objects[key])
                if method == "DELETE":
                    # as a query parameter (the client's) or in a DeleteOptions body
                    policy = query.get("propagationPolicy") or (body or {}).get("propagationPolicy")
                    fake.deleted.append((plural, rest[0], policy))
                    del fake.objects[key]
                    for pod_key in [k for k in fake.pods if k[0] == ns]:
                        del fake.pods[pod_key]
                    if plural == "experiments":  # its trials are owned by it
                        for trial_key in [
                            k
                            for k, o in fake.objects.items()
                            if k[0] == "trials"
                            and k[1] == ns
                            and (o["metadata"].get("labels") or {}).get(EXPERIMENT_LABEL) == rest[0]
                        ]:
                            del fake.objects[trial_key]
                    return self._status(200, "", f"{rest[0]} deleted")
                if method == "PATCH":
                    kind = self.headers.get("Content-Type", "")
                    if kind != "application/merge-patch+json":
                        return self._status(415, "UnsupportedMediaType", kind)
                    old = fake.objects[key]
                    new = merge_patch(old, body)
                    problem = fake._validate(plural, new, old)
                    if problem:
                        return self._status(
                            422, "Invalid", f"{old.get('kind')} is invalid: {problem}"
                        )
                    fake.objects[key] = new
                    return self._reply(200, new)
                self._status(405, "MethodNotAllowed", method)

            def _pods(self, method: str, parts: list[str], query: dict[str, str]) -> None:
                ns = parts[3]
                if method != "GET":
                    return self._status(405, "MethodNotAllowed", method)
                if len(parts) == 5:
                    wanted = dict(
                        p.split("=", 1) for p in query.get("labelSelector", "").split(",") if p
                    )
                    items = [
                        pod
                        for (pns, _), pod in sorted(fake.pods.items())
                        if pns == ns
                        and all(pod["metadata"]["labels"].get(k) == v for k, v in wanted.items())
                    ]
                    return self._reply(
                        200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
                    )
                if len(parts) == 7 and parts[6] == "log":
                    pod = fake.pods.get((ns, parts[5]))
                    if pod is None:
                        return self._status(404, "NotFound", f'pods "{parts[5]}" not found')
                    names = [c["name"] for c in pod["spec"]["containers"]]
                    if query.get("container") not in names:
                        return self._status(
                            400,
                            "BadRequest",
                            f"container {query.get('container')} is not valid for pod {parts[5]}",
                        )
                    return self._reply(200, fake.logs[(ns, parts[5])], text=True)
                self._status(404, "NotFound", "/".join(parts))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_DELETE(self) -> None:
                self._route("DELETE")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        return Handler


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON merge patch ``patch`` applied (RFC 7386)."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
