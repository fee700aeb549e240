"""A stateful, validating in-process mock of the Kubeflow Pipelines v2beta1 REST API.

It serves the official swagger (``kfp_api_v2beta1.swagger.json`` next to this file; provenance in
``SOURCES.md``) on ``http://127.0.0.1:<port>`` so that the real ``kfp.Client`` can be driven
without a cluster, and it is honest both ways:

* requests: routed by the swagger's ``paths`` (templates such as ``{run_id}:terminate``) and
  method; query parameters are checked against the operation's ``in: query`` parameters (unknown
  names, types, enums) and JSON bodies against the referenced definition with ``jsonschema``.
  grpc-gateway speaks proto3 JSON, so ``int64`` values may be strings or integers and definitions
  that declare ``properties`` reject unknown fields. Unrouted paths answer 404 ``{"code": 5}``,
  invalid requests 400 ``{"code": 3}`` naming the field; both are appended to ``violations``.
* responses: every body sent is validated against the operation's response schema (``200`` or
  ``default``); a body that fails becomes a 500 and a violation.

State and knobs (attributes of ``KfpApiMock``; the ``kfp_api`` fixture is one, started):

* ``url`` (``http://127.0.0.1:PORT``); ``experiments`` / ``runs``: id -> the stored API object;
  ``requests``: every request as ``Request(method, path, query, body, headers)`` (query values are
  strings, a list when repeated; body parsed JSON or None; header names lower-cased);
  ``violations``: what was wrong, in requests and in the mock's own responses (assert ``== []``).
* runs take their tasks from the inline ``pipeline_spec.root.dag.tasks`` (``dependentTasks``) and
  advance one tick per ``GET /apis/v2beta1/runs/{run_id}`` (or ``advance(run_id)``): PENDING ->
  RUNNING, with the tasks whose dependencies SUCCEEDED now RUNNING -> each RUNNING task
  SUCCEEDED after ``ticks_per_task`` (default 1) ticks, its dependants RUNNING on that same tick
  -> the run SUCCEEDED on the tick its last task does. ``fail_task = "name"``: that task FAILS
  (with an ``error``), its downstream tasks are SKIPPED, the run FAILS. ``hold = True``: RUNNING
  tasks do not finish until it is set back. ``:terminate``: CANCELING, then on the next GET
  CANCELED with running tasks CANCELED and pending ones SKIPPED. The knobs are read at each tick.
* ``require_token = "t"`` / ``require_cookie = "name=value"``: requests without
  ``Authorization: Bearer t`` / that cookie answer 401 ``{"code": 16}`` (not a violation).
  ``multi_user`` is what healthz reports (default False).

Deliberate differences from the real server (documented, not hidden):
* unknown query parameters are rejected (grpc-gateway ignores them), so typos in what the SDK
  sends are caught; every 400 is recorded as a violation;
* ``filter`` is parsed like the server does (proto3 JSON: lowerCamelCase names and enum numbers
  are accepted), then checked against ``v2beta1Filter``;
* tasks not yet started are listed as PENDING in ``run_details.task_details`` (the real server
  lists only tasks that exist in the workflow); a ``root`` entry stands for the pipeline DAG;
* operations in the swagger that the mock does not simulate (pipelines, recurring runs, runs of
  stored pipeline versions, ...) answer 501 ``{"code": 12}``; unknown ids answer 404. Every path
  served is in the swagger; kfp.Client 2.17 needs none outside it.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

import jsonschema

SPEC_PATH = Path(__file__).with_name("kfp_api_v2beta1.swagger.json")
JSON = dict[str, Any]

# google.rpc.Code -> HTTP status, as grpc-gateway maps them.
_HTTP = {3: 400, 5: 404, 6: 409, 9: 400, 12: 501, 13: 500, 16: 401}
# filter.proto's PredicateOperation numbers (the swagger's enum lists names only; 4 is unused).
_PREDICATE_OPS = {
    0: "OPERATION_UNSPECIFIED",
    1: "EQUALS",
    2: "NOT_EQUALS",
    3: "GREATER_THAN",
    5: "GREATER_THAN_EQUALS",
    6: "LESS_THAN",
    7: "LESS_THAN_EQUALS",
    8: "IN",
    9: "IS_SUBSTRING",
}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQUALS": lambda a, b: a == b,
    "NOT_EQUALS": lambda a, b: a != b,
    "GREATER_THAN": lambda a, b: a > b,
    "GREATER_THAN_EQUALS": lambda a, b: a >= b,
    "LESS_THAN": lambda a, b: a < b,
    "LESS_THAN_EQUALS": lambda a, b: a <= b,
    "IN": lambda a, b: a in b,
    "IS_SUBSTRING": lambda a, b: str(b) in str(a),
}
_DONE = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}
DEFAULT_PAGE_SIZE = 20


class ApiError(Exception):
    """An error answered as a googleRpcStatus body."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Request(NamedTuple):
    """One recorded request; header names are lower-cased, repeated query keys give lists."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any
    headers: dict[str, str]


@dataclass
class Call:
    path: dict[str, str]
    query: dict[str, str]
    body: Any


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_jsonschema(node: Any) -> Any:
    """Swagger 2.0 schema -> draft-4 JSON schema with grpc-gateway's proto3 JSON rules."""
    if isinstance(node, list):
        return [_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {n: _to_jsonschema(s) for n, s in v.items()}
            if k in ("properties", "definitions")
            else _to_jsonschema(v)
        )
        for k, v in node.items()
    }
    if node.get("format") in ("int64", "uint64"):  # proto3 JSON: a decimal string or a number
        out.pop("format")
        out.update(type=["string", "integer"], pattern=r"^-?[0-9]+$")
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False  # protojson rejects unknown fields
    return out


def _errors(validator: jsonschema.Draft4Validator, instance: Any, where: str) -> list[str]:
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join([where, *map(str, e.absolute_path)])}: {e.message}" for e in found]


class Spec:
    """The swagger: routes, parameters and compiled validators."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.doc: JSON = json.loads(path.read_text())
        self.definitions = _to_jsonschema(self.doc["definitions"])
        self._validators: dict[str, jsonschema.Draft4Validator] = {}
        self.routes: list[tuple[str, re.Pattern[str], list[str], JSON]] = []
        for template, item in self.doc["paths"].items():
            parts = re.split(r"{([^}]+)}", template)  # literal, name, literal, ...
            names = parts[1::2]
            pattern = "".join("([^/:]+)" if i % 2 else re.escape(p) for i, p in enumerate(parts))
            for method, op in item.items():
                self.routes.append((method.upper(), re.compile(pattern + "$"), names, op))
        self.routes.sort(key=lambda r: len(r[2]))  # literal segments win over templates

    def route(self, method: str, path: str) -> tuple[JSON, dict[str, str]]:
        for verb, pattern, names, op in self.routes:
            m = pattern.match(path)
            if m and verb == method:
                return op, {n: unquote(v) for n, v in zip(names, m.groups(), strict=True)}
        raise ApiError(5, f"{method} {path} is not an operation of the KFP v2beta1 API")

    def validator(self, schema: JSON) -> jsonschema.Draft4Validator:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = jsonschema.Draft4Validator(
                {**_to_jsonschema(schema), "definitions": self.definitions},
                format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER,
            )
        return self._validators[key]

    def check_query(self, op: JSON, query: dict[str, list[str]]) -> dict[str, str]:
        params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}
        problems, out = [], {}
        for name, values in query.items():
            p = params.get(name)
            if p is None:
                problems.append(f"query parameter {name!r} is not defined for {op['operationId']}")
                continue
            if len(values) > 1:
                problems.append(f"query parameter {name!r} is repeated")
            value = out[name] = values[-1]
            problems += [f"query parameter {name!r}: {e}" for e in _scalar_errors(p, value)]
        problems += [
            f"query parameter {n!r} is required"
            for n, p in params.items()
            if p.get("required") and n not in query
        ]
        if problems:
            raise ApiError(3, "; ".join(problems))
        return out

    def check_body(self, op: JSON, body: Any) -> None:
        param = next((p for p in op.get("parameters", []) if p["in"] == "body"), None)
        if param is None:
            return  # grpc-gateway does not read a body the rule does not bind
        if body is None:
            raise ApiError(3, f"body {param['name']!r} is required")
        problems = _errors(self.validator(param["schema"]), body, param["name"])
        if problems:
            raise ApiError(3, "; ".join(problems))

    def check_response(self, op: JSON | None, status: int, body: JSON) -> list[str]:
        responses = op["responses"] if op else {}
        schema = (
            responses.get(str(status))
            or responses.get("default")
            or {"schema": {"$ref": "#/definitions/googleRpcStatus"}}
        )["schema"]
        return _errors(self.validator(schema), body, "response")


def _scalar_errors(param: JSON, value: str) -> Iterable[str]:
    kind = param.get("type")
    if kind == "integer" or param.get("format") in ("int64", "uint64"):
        if not re.fullmatch(r"-?[0-9]+", value):
            yield f"{value!r} is not an integer"
        elif param.get("format") == "int32" and not -(2**31) <= int(value) < 2**31:
            yield f"{value} is out of int32 range"
    elif kind == "boolean" and value not in ("true", "false"):
        yield f"{value!r} is not a boolean"
    if "enum" in param and value not in param["enum"]:
        yield f"{value!r} is not one of {param['enum']}"


def _proto_json(node: Any) -> Any:
    """Normalise proto3 JSON spellings (lowerCamelCase keys, enum numbers) to the swagger's."""
    if isinstance(node, list):
        return [_proto_json(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), k): _proto_json(v) for k, v in node.items()
    }
    if isinstance(out.get("operation"), int):
        out["operation"] = _PREDICATE_OPS.get(out["operation"], out["operation"])
    return out


@dataclass
class _Sim:
    """Simulation state of one run (the API view lives in ``KfpApiMock.runs``)."""

    deps: dict[str, list[str]]
    tasks: dict[str, JSON]
    root: JSON
    ticks: dict[str, int] = field(default_factory=dict)


class KfpApiMock:
    """The mock server. ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, spec: Spec | None = None) -> None:
        self.spec = spec or Spec()
        self.experiments: dict[str, JSON] = {}
        self.runs: dict[str, JSON] = {}
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.require_token: str | None = None
        self.require_cookie: str | None = None
        self.multi_user = False
        self.fail_task: str | None = None
        self.ticks_per_task = 1
        self.hold = False
        self.url = ""
        self._sims: dict[str, _Sim] = {}
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ops: dict[str, Callable[[Call], JSON]] = {
            "HealthzService_GetHealthz": self._healthz,
            "ExperimentService_CreateExperiment": self._create_experiment,
            "ExperimentService_ListExperiments": self._list_experiments,
            "ExperimentService_GetExperiment": lambda c: self._get(
                self.experiments, c, "experiment"
            ),
            "ExperimentService_DeleteExperiment": self._delete_experiment,
            "RunService_CreateRun": self._create_run,
            "RunService_ListRuns": self._list_runs,
            "RunService_GetRun": self._get_run,
            "RunService_TerminateRun": self._terminate_run,
            "RunService_DeleteRun": self._delete_run,
        }

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> KfpApiMock:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = False  # handler threads are joined by server_close()
        server.mock = self  # type: ignore[attr-defined]
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="kfp-mock", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            assert self._thread is not None
            self._thread.join(timeout=5)
            self._server = self._thread = None

    def __enter__(self) -> KfpApiMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------------
    def handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, JSON]:
        """Serve one request: auth, route, validate, dispatch, validate the response."""
        parts = urlsplit(target)
        query: dict[str, list[str]] = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k, []).append(v)
        body: Any = None
        bad_json = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as e:
                body, bad_json = raw.decode(errors="replace"), f"body is not JSON: {e}"
        with self._lock:
            self.requests.append(
                Request(
                    method,
                    parts.path,
                    {k: v[0] if len(v) == 1 else v for k, v in query.items()},
                    body,
                    headers,
                )
            )
            op: JSON | None = None
            try:
                self._authenticate(headers)
                op, path_params = self.spec.route(method, parts.path)
                if bad_json:
                    raise ApiError(3, bad_json)
                call = Call(path_params, self.spec.check_query(op, query), body)
                self.spec.check_body(op, body)
                handler = self._ops.get(op["operationId"])
                if handler is None:
                    raise ApiError(12, f"{op['operationId']} is not simulated by the mock")
                status, answer = 200, handler(call)
            except ApiError as e:  # invalid argument, or a path the API does not have
                if e.code == 3 or (e.code == 5 and op is None):
                    self.violations.append(f"{method} {target}: {e.message}")
                status, answer = _HTTP.get(e.code, 500), {"code": e.code, "message": e.message}
            except Exception as e:  # a bug in the mock: say so rather than drop the connection
                self.violations.append(f"{method} {target}: mock crashed: {e!r}")
                status, answer = 500, {"code": 13, "message": f"mock crashed: {e!r}"}
            problems = self.spec.check_response(op, status, answer)
            if problems:
                self.violations += [f"{method} {target}: mock sent invalid {p}" for p in problems]
                status, answer = 500, {"code": 13, "message": "; ".join(problems)}
            return status, answer

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self.require_token and headers.get("authorization") != f"Bearer {self.require_token}":
            raise ApiError(16, "missing or wrong 'Authorization: Bearer' token")
        cookies = [c.strip() for c in headers.get("cookie", "").split(";")]
        if self.require_cookie and self.require_cookie not in cookies:
            raise ApiError(16, f"missing cookie {self.require_cookie.split('=')[0]!r}")

    # -- generic helpers -------------------------------------------------------------------
    @staticmethod
    def _get(store: dict[str, JSON], call: Call, kind: str) -> JSON:
        key = f"{kind}_id"
        if call.path[key] not in store:
            raise ApiError(5, f"{kind} {call.path[key]!r} not found")
        return copy.deepcopy(store[call.path[key]])

    def _listing(self, items: list[JSON], call: Call, definition: str, field_name: str) -> JSON:
        props = self.spec.doc["definitions"][definition]["properties"]
        for pred in self._predicates(call.query.get("filter")):
            if pred.get("key") not in props:
                raise ApiError(3, f"filter key {pred.get('key')!r} is not a {definition} field")
            op, want = pred.get("operation", "OPERATION_UNSPECIFIED"), _predicate_value(pred)
            if op not in _COMPARE:
                raise ApiError(3, f"filter operation {op} is not supported")
            items = [i for i in items if _COMPARE[op](i.get(pred["key"], ""), want)]
        sort_by = call.query.get("sort_by", "").split()
        if sort_by:
            if sort_by[0] not in props or sort_by[1:] not in ([], ["desc"], ["asc"]):
                raise ApiError(3, f"sort_by {call.query['sort_by']!r}: not '<field> [desc]'")
            items = sorted(
                items, key=lambda i: str(i.get(sort_by[0], "")), reverse=sort_by[1:] == ["desc"]
            )
        token = call.query.get("page_token", "")
        if token and not token.isdigit():
            raise ApiError(3, f"page_token {token!r} is not a token this server issued")
        start = int(token or 0)
        size = int(call.query.get("page_size") or 0) or DEFAULT_PAGE_SIZE
        page, answer = items[start : start + size], JSON()
        if page:
            answer[field_name] = copy.deepcopy(page)
        if items:
            answer["total_size"] = len(items)
        if start + size < len(items):
            answer["next_page_token"] = str(start + size)
        return answer

    def _predicates(self, raw: str | None) -> list[JSON]:
        if not raw:
            return []
        try:
            parsed = _proto_json(json.loads(raw))
        except ValueError as e:
            raise ApiError(3, f"filter is not JSON: {e}") from None
        problems = _errors(
            self.spec.validator({"$ref": "#/definitions/v2beta1Filter"}), parsed, "filter"
        )
        if problems:
            raise ApiError(3, "; ".join(problems))
        return list(parsed.get("predicates", []))

    # -- healthz and experiments -----------------------------------------------------------
    def _healthz(self, call: Call) -> JSON:
        return {"multi_user": self.multi_user, "pipeline_store": "database"}

    def _create_experiment(self, call: Call) -> JSON:
        body = call.body
        if not body.get("display_name"):
            raise ApiError(3, "experiment.display_name is required")
        namespace = body.get("namespace", "")
        if any(
            e["display_name"] == body["display_name"] and e.get("namespace", "") == namespace
            for e in self.experiments.values()
        ):
            raise ApiError(6, f"experiment {body['display_name']!r} already exists")
        exp = {
            "experiment_id": str(uuid.uuid4()),
            "display_name": body["display_name"],
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        exp.update({k: body[k] for k in ("description", "namespace") if body.get(k)})
        self.experiments[exp["experiment_id"]] = exp
        return copy.deepcopy(exp)

    def _list_experiments(self, call: Call) -> JSON:
        ns = call.query.get("namespace")
        items = [e for e in self.experiments.values() if not ns or e.get("namespace") == ns]
        return self._listing(items, call, "v2beta1Experiment", "experiments")

    def _delete_experiment(self, call: Call) -> JSON:
        self._get(self.experiments, call, "experiment")
        del self.experiments[call.path["experiment_id"]]
        return {}

    # -- runs ------------------------------------------------------------------------------
    def _create_run(self, call: Call) -> JSON:
        body = call.body
        if not body.get("display_name"):
            raise ApiError(3, "run.display_name is required")
        if "pipeline_spec" not in body:
            if body.keys() & {"pipeline_version_reference", "pipeline_version_id"}:
                raise ApiError(12, "runs of stored pipeline versions are not simulated")
            raise ApiError(3, "run.pipeline_spec or run.pipeline_version_reference is required")
        exp_id = body.get("experiment_id") or call.query.get("experiment_id")
        if not exp_id:
            exp_id = next(
                (i for i, e in self.experiments.items() if e["display_name"] == "Default"), None
            )
            exp_id = (
                exp_id
                or self._create_experiment(Call({}, {}, {"display_name": "Default"}))[
                    "experiment_id"
                ]
            )
        if exp_id not in self.experiments:
            raise ApiError(5, f"experiment {exp_id!r} not found")
        deps = _dag(body["pipeline_spec"])
        now, run_id = _now(), str(uuid.uuid4())
        run = {
            k: copy.deepcopy(body[k])
            for k in (
                "display_name",
                "description",
                "pipeline_spec",
                "runtime_config",
                "service_account",
            )
            if k in body
        }
        run.update(
            run_id=run_id,
            experiment_id=exp_id,
            storage_state="AVAILABLE",
            created_at=now,
            scheduled_at=now,
            state="PENDING",
            state_history=[{"update_time": now, "state": "PENDING"}],
        )
        root = _task(run_id, "root", now)
        tasks = {name: _task(run_id, name, now, root["task_id"]) for name in deps}
        root["child_tasks"] = [{"task_id": t["task_id"]} for t in tasks.values()]
        run["run_details"] = {"task_details": [root, *tasks.values()]}
        self.runs[run_id] = run
        self._sims[run_id] = _Sim(deps, tasks, root)
        self.experiments[exp_id]["last_run_created_at"] = now
        return copy.deepcopy(run)

    def _get_run(self, call: Call) -> JSON:
        self._get(self.runs, call, "run")
        self.advance(call.path["run_id"])
        return self._get(self.runs, call, "run")

    def _list_runs(self, call: Call) -> JSON:
        exp, ns = call.query.get("experiment_id"), call.query.get("namespace")
        items = [
            r
            for r in self.runs.values()
            if (not exp or r["experiment_id"] == exp)
            and (not ns or self.experiments.get(r["experiment_id"], {}).get("namespace") == ns)
        ]
        return self._listing(items, call, "v2beta1Run", "runs")

    def _terminate_run(self, call: Call) -> JSON:
        self._get(self.runs, call, "run")
        run = self.runs[call.path["run_id"]]
        if run["state"] not in _DONE:  # a finished run stays as it is
            _set_state(run, "CANCELING")
        return {}

    def _delete_run(self, call: Call) -> JSON:
        self._get(self.runs, call, "run")
        del self.runs[call.path["run_id"]], self._sims[call.path["run_id"]]
        return {}

    def advance(self, run_id: str) -> None:
        """One tick of run ``run_id`` (what each GET of the run does)."""
        with self._lock:
            run, sim = self.runs[run_id], self._sims[run_id]
            if run["state"] == "CANCELING":
                for task in sim.tasks.values():
                    if task["state"] == "RUNNING":
                        _set_state(task, "CANCELED")
                    elif task["state"] == "PENDING":
                        _set_state(task, "SKIPPED")
                self._finish(run, sim, "CANCELED")
                return
            if run["state"] in _DONE:
                return
            if run["state"] == "PENDING":
                _set_state(run, "RUNNING")
                _set_state(sim.root, "RUNNING")
            elif not self.hold:
                for name, task in sim.tasks.items():
                    if task["state"] != "RUNNING":
                        continue
                    sim.ticks[name] = sim.ticks.get(name, 0) + 1
                    if sim.ticks[name] >= self.ticks_per_task:
                        fail = self.fail_task in (name, task["display_name"])
                        _set_state(
                            task,
                            "FAILED" if fail else "SUCCEEDED",
                            f"task {name!r} failed (fail_task)" if fail else None,
                        )
            for name in sim.deps:  # topological order: skips propagate in one pass
                task, states = sim.tasks[name], {sim.tasks[d]["state"] for d in sim.deps[name]}
                if task["state"] == "PENDING" and states & {"FAILED", "SKIPPED", "CANCELED"}:
                    _set_state(task, "SKIPPED")
                elif task["state"] == "PENDING" and states <= {"SUCCEEDED"}:
                    _set_state(task, "RUNNING")
            if all(t["state"] in _DONE for t in sim.tasks.values()):
                failed = [n for n, t in sim.tasks.items() if t["state"] == "FAILED"]
                self._finish(
                    run,
                    sim,
                    "FAILED" if failed else "SUCCEEDED",
                    f"task(s) {', '.join(failed)} failed" if failed else None,
                )

    @staticmethod
    def _finish(run: JSON, sim: _Sim, state: str, error: str | None = None) -> None:
        _set_state(sim.root, state, error)
        _set_state(run, state, error)
        run["finished_at"] = run["state_history"][-1]["update_time"]


def _predicate_value(pred: JSON) -> Any:
    for key in ("string_value", "int_value", "long_value", "timestamp_value"):
        if key in pred:
            return pred[key]
    for key in ("string_values", "int_values", "long_values"):
        if key in pred:
            return pred[key].get("values", [])
    return ""


def _task(run_id: str, name: str, now: str, parent: str | None = None) -> JSON:
    task = {
        "run_id": run_id,
        "task_id": str(uuid.uuid4()),
        "display_name": name,
        "create_time": now,
        "state": "PENDING",
        "state_history": [{"update_time": now, "state": "PENDING"}],
    }
    if parent:
        task["parent_task_id"] = parent
    return task


def _set_state(obj: JSON, state: str, error: str | None = None) -> None:
    """Move a run or task to ``state``, keeping times and ``state_history`` consistent."""
    now = _now()
    obj["state"] = state
    entry: JSON = {"update_time": now, "state": state}
    if error:
        obj["error"] = entry["error"] = {"code": 2, "message": error}
    obj["state_history"].append(entry)
    if "task_id" in obj:  # a task detail
        if state == "RUNNING":
            obj["start_time"] = now
        elif state in _DONE:
            obj.setdefault("start_time", now)
            obj["end_time"] = now


def _dag(pipeline_spec: JSON) -> dict[str, list[str]]:
    """Task name -> dependencies of the root DAG, in topological order; 400 if malformed."""
    spec = pipeline_spec.get("pipeline_spec", pipeline_spec)  # kfp wraps it with platform_spec
    root = spec.get("root")
    if not isinstance(root, dict):
        raise ApiError(3, "run.pipeline_spec.root is missing: not a compiled KFP v2 pipeline")
    tasks = root.get("dag", {}).get("tasks", {})
    deps = {
        n: list(t.get("dependentTasks", t.get("dependent_tasks", []))) for n, t in tasks.items()
    }
    ordered: dict[str, list[str]] = {}
    while len(ordered) < len(deps):
        ready = [n for n, d in deps.items() if n not in ordered and set(d) <= set(ordered)]
        if not ready:
            bad = sorted(set(deps) - set(ordered))
            raise ApiError(3, f"run.pipeline_spec.root.dag: unknown or cyclic dependentTasks {bad}")
        ordered.update((n, deps[n]) for n in ready)
    return ordered


class _Handler(BaseHTTPRequestHandler):
    server_version = "kfp-mock/1"
    timeout = 10  # a client that connects and sends nothing cannot block server_close()

    def _serve(self) -> None:
        mock: KfpApiMock = self.server.mock  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body = mock.handle(self.command, self.path, headers, raw)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
