"""A bounded, deterministic fuzz of every kfnb REST route with hostile input.

Every route of ``server_ext/routes.py``, with every verb its handler serves, gets requests built
from a seeded random generator: oversized bodies, NaN and infinities in JSON, JSON nested 10,000
deep, bodies that are no JSON or no UTF-8, very long strings and paths, odd text (NUL, an RTL
override, lone surrogates escaped in JSON, emoji), values of the wrong type, traversal (``../``,
absolute paths, ``%2e%2e``). Whatever comes in, each answer must be documented by the contract
(``server_ext/openapi.yaml``, checked as ``tests/server`` checks it), never a 5xx; an error's body
is ``{code, message, fix, where}`` without a Python traceback; and the server keeps answering.

Runs and studies that a request would start are recorded but not executed (no kernel starts):
every check before (backend options, notebook, parameters, search space) and ``LocalBackend
.submit`` itself run; only the kernels, the scheduler's thread and the study runner are stubbed.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
import tornado.web
from pytest_jupyter.jupyter_server import *  # noqa: F403
from tornado.httpclient import AsyncHTTPClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from api_client import Api, Reply, load_contract, notebook_node

import kfnb.backends.local
import kfnb.kernels
from kfnb.backends import StoreRunHandle
from kfnb.backends.local import LocalBackend
from kfnb.kernels import shutdown_shared_pools
from kfnb.server_ext.cells import FIELDS as CELL_FIELDS
from kfnb.server_ext.routes import PART, ROUTES
from kfnb.server_ext.runs import RUN_FIELDS
from kfnb.server_ext.studies import STUDY_FIELDS
from kfnb.tracking import Store
from kfnb.tuning.backends import LocalTuner

SEED = 20261207
PER_OPERATION = 16  # random requests per route and verb, after the fixed ones
VERBS = ("get", "post", "put", "patch", "delete")
NOTEBOOK = "ok.ipynb"
CELLS = (("pipeline-parameters", "n = 3\nlr = 0.1"), ("step:only", "x = n * lr"))


# -- the server -----------------------------------------------------------------------------------
@pytest.fixture  # type: ignore[no-redef]  # overrides the plugin's fixture of that name
def jp_server_config(kfnb_home: Path) -> dict[str, Any]:
    """kfnb alone, authenticated requests only, its own run store, no background refresh."""
    return {
        "ServerApp": {
            "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "KfnbServerSettings": {"pool_size": 0, "home": str(kfnb_home), "refresh_interval": 0},
    }


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No user config or cluster settings; no kernel starts: a run a request starts goes all
    through ``LocalBackend.submit`` (its record, cache look-up, step notebooks) but gets no
    kernels and a scheduler that does nothing; a study gets no runner. Both stay pending."""
    monkeypatch.setenv("KFNB_CONFIG", str(tmp_path / "kfnb-config.yaml"))
    for name in ("KFNB_KFP_HOST", "KF_PIPELINES_ENDPOINT", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)

    class IdleScheduler:
        final_status = None

        def __init__(self, **kw: Any) -> None:
            self.finished = threading.Event()

        def run(self) -> None:
            pass

        def cancel(self) -> None:
            pass

    def start(store: Store, study_id: str, spec: Any, target: Any) -> Any:
        return StoreRunHandle(store, study_id)

    monkeypatch.setattr(kfnb.kernels, "shared_pool", lambda config: None)
    monkeypatch.setattr(kfnb.backends.local, "Scheduler", IdleScheduler)
    monkeypatch.setattr(LocalTuner, "_start", staticmethod(start))
    yield
    shutdown_shared_pools()


# -- the routes -----------------------------------------------------------------------------------
def operations() -> list[tuple[str, str]]:
    """(template, METHOD) of every route and every verb its handler serves."""
    found = []
    for parts, handler in ROUTES:
        names = iter(("id", "step"))
        template = "/".join("{" + next(names) + "}" if p == PART else p for p in parts)
        for verb in VERBS:
            if getattr(handler, verb) is not getattr(tornado.web.RequestHandler, verb):
                found.append((template, verb.upper()))
    return found


# -- hostile values -------------------------------------------------------------------------------
def nested(depth: int, leaf: str = "1") -> str:
    """JSON text ``depth`` levels deep, lists and objects by turns."""
    opening = "".join("[" if i % 2 else '{"a":' for i in range(depth))
    closing = "".join("]" if i % 2 else "}" for i in reversed(range(depth)))
    return opening + leaf + closing


DEEP_SUM = "+".join(["1"] * 20000)
STRINGS: list[str] = [
    "",
    " ",
    NOTEBOOK,
    "../" + NOTEBOOK,
    "../../../../etc/passwd",
    "/etc/passwd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..%2f" + NOTEBOOK,
    "sub/../../" + NOTEBOOK,
    "a\x00b.ipynb",
    "\x00",
    "\u202egnp.ipynb",
    "\ud800",
    "x\udfff.ipynb",
    "\U0001f600" * 64 + ".ipynb",
    "x" * 100_000,
    "n" * 5994 + ".ipynb",
    "d/" * 2997 + "x.ipynb",
    "C:\\Windows\\x.ipynb",
    "\\\\host\\share\\x.ipynb",
    "~/x.ipynb",
    NOTEBOOK + "/",
    ".",
    "..",
    "./" + NOTEBOOK,
    "file:///etc/passwd",
    NOTEBOOK + "\n",
    "kfnb-runs",
    "NaN",
    "-Infinity",
    "1e999",
    "-1",
    "None",
    "__import__('os').system('true')",
    DEEP_SUM,
    "[" * 5000,
]
NUMBERS: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    -0.0,
    2**64,
    -(2**63) - 1,
    -1,
    0,
    1,
    0.5,
    True,
    False,
    None,
]
CONTAINERS: list[Any] = [
    [],
    {},
    [None],
    {"": None},
    {"\ud800": 1},
    {"\x00": "\x00"},
    ["x"] * 2000,
    {f"k{i}": i for i in range(2000)},
    json.loads(nested(200)),
]
#: Bodies that are no JSON object, or no JSON, or too big to be reasonable.
RAW_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b'"text"',
    b"42",
    b"NaN",
    b"{",
    b'{"path": }',
    b"\xff\xfe\x00{",
    b'{"path": "\xff\xfe.ipynb"}',
    b"\xef\xbb\xbf{}",
    b"\x00",
    nested(10_000).encode(),
    ("[" * 100_000).encode(),
    b'{"path": "' + b"a" * 3_000_000 + b'"}',
    b'{"params": {' + b",".join(b'"p%d": %d' % (i, i) for i in range(50_000)) + b"}}",
    b'{"path": "ok.ipynb", "params": {"n": NaN, "lr": Infinity}}',
    b'{"add": 1e999}',
    b'{"add": ' + b"9" * 5000 + b"}",
]
LAST_EVENT_IDS = ["NaN", "-1", "9" * 400, "9" * 5000, str(2**63), "1e9", " ", "x", "\u00e9"]
PATH_ARGS: list[str] = [
    "x",
    "..",
    ".",
    "%2e%2e",
    "%",
    "_",
    "*",
    "' OR 1=1 --",
    "a" * 6000,
    "\x00",
    "\u202e",
    "\U0001f600",
    "2",
    "only",
]


def hostile(rng: random.Random) -> Any:
    """One hostile JSON value."""
    pool = rng.choice((STRINGS, STRINGS, NUMBERS, CONTAINERS))
    return rng.choice(pool)


def notebook_model(rng: random.Random) -> Any:
    """A notebook model: a good one, one with hostile parts, or no model at all."""
    good = json.loads(nbformat.writes(notebook_node(*CELLS)))
    choice = rng.randrange(6)
    if choice == 0:
        return good
    if choice == 1:
        good["cells"][0]["source"] = f"n = {DEEP_SUM}"
        return good
    if choice == 2:
        good[rng.choice(["cells", "nbformat", "metadata", "nbformat_minor"])] = hostile(rng)
        return good
    if choice == 3:
        cell = good["cells"][rng.randrange(2)]
        cell[rng.choice(["source", "metadata", "cell_type", "outputs"])] = hostile(rng)
        return good
    if choice == 4:
        good["metadata"] = json.loads(nested(400))
        return good
    return hostile(rng)


def field_value(rng: random.Random, name: str) -> Any:
    """A value for a known field: often hostile, sometimes one that gets further in."""
    if name in ("path", "notebook") and rng.random() < 0.35:
        return NOTEBOOK
    if name == "notebook" and rng.random() < 0.3:
        return notebook_model(rng)
    if name in ("params", "options", "space") and rng.random() < 0.6:
        keys = ["n", "lr", "cache", "max_parallel", rng.choice(STRINGS)[:50]]
        return {rng.choice(keys): hostile(rng) for _ in range(rng.randrange(1, 4))}
    if name == "param_strings" and rng.random() < 0.6:
        return {rng.choice(["n", "lr"]): rng.choice([s for s in STRINGS if len(s) < 30000])}
    if name == "step" and rng.random() < 0.6:
        step = {"name": "only", "after": [], "gpus": 0, "image": None}
        step[rng.choice(list(step))] = hostile(rng)
        return step
    if name == "initial" and rng.random() < 0.5:
        return [{"n": hostile(rng)}]
    return hostile(rng)


#: The fields each body takes (the handlers' own lists).
FIELDS: dict[str, tuple[str, ...]] = {
    "pipeline": ("path", "notebook"),
    "cells/step": CELL_FIELDS,
    "runs": RUN_FIELDS,
    "studies": STUDY_FIELDS,
    "studies/{id}/trials": ("add",),
}
#: The query arguments each GET route reads.
QUERY: dict[str, tuple[str, ...]] = {
    "pipeline": ("path",),
    "runs": ("notebook", "status", "kind", "parent", "roots", "limit", "offset"),
    "runs/{id}/steps/{step}/log": ("offset", "limit"),
    "events": ("after", "limit"),
}


def text_value(rng: random.Random) -> str:
    """A hostile query value (text: a URL carries no lone surrogate)."""
    value = hostile(rng)
    if not isinstance(value, str):
        value = json.dumps(value)
    value = value[:4000]  # the URL stays under the server's header limit (64 KiB)
    return value.encode("utf-8", "replace").decode("utf-8")


@dataclass
class Request:
    method: str
    template: str
    url: str
    body: bytes | None
    headers: dict[str, str]

    def describe(self) -> str:
        shown = self.body[:120] if self.body else b""
        extra = {k: v[:60] for k, v in self.headers.items() if k != "Authorization"}
        return f"{self.method} {self.url[:160]} body={shown!r} headers={extra}"


def build(
    rng: random.Random, api: Api, template: str, method: str, known: dict[str, str]
) -> Request:
    """One hostile request to ``template``."""
    path_args = {}
    for name in ("id", "step"):
        if "{" + name + "}" in template:
            real = known["study" if template.startswith("studies") else "run"]
            good = real if name == "id" else "only"
            path_args[name] = good if rng.random() < 0.5 else rng.choice([*PATH_ARGS, real[:8]])
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    if method == "GET":
        for name in QUERY.get(template, ()):
            if rng.random() < 0.5:
                query.append((name, text_value(rng)))
        if rng.random() < 0.2:
            query.append((rng.choice(["x", "path", "\u202e"]), text_value(rng)))
        if template == "events":
            # wait=0: a JSON page (a stream would never end); or a wait value it refuses
            query.append(("wait", rng.choice(["0", "0", "0", "2", "yes", "-1", "00"])))
            if rng.random() < 0.3:
                headers["Last-Event-ID"] = rng.choice(LAST_EVENT_IDS)
        if template == "pipeline" and rng.random() < 0.2:
            query = [("path", rng.choice(["%ED%A0%80", "%FF%FE", "%00"]))]
            url = api.url(template, path_args) + "?path=" + query[0][1]
            return Request(method, template, url, None, {**api.auth, **headers})
    body: bytes | None = None
    if method == "POST":
        if rng.random() < 0.3:
            body = rng.choice(RAW_BODIES)
        else:
            fields = FIELDS.get(template, ("path",))
            value = {name: field_value(rng, name) for name in fields if rng.random() < 0.6}
            if rng.random() < 0.15:
                value[rng.choice(STRINGS)[:100]] = hostile(rng)
            body = json.dumps(value, allow_nan=True).encode()
        headers["Content-Type"] = rng.choice(["application/json", "text/plain", "x/\u00e9"])
    url = api.url(template, path_args, query or None)
    return Request(method, template, url, body, {**api.auth, **headers})


# -- fixed cases ----------------------------------------------------------------------------------
#: Values each field that gets past the shape checks is tried with (into the core's checks).
VALUES: list[Any] = [
    *NUMBERS,
    *CONTAINERS[:6],
    "",
    "\x00",
    "\ud800",
    "x" * 100_000,
    DEEP_SUM,
    "[" * 5000,
]


#: Values each backend option is tried with: the wrong type, out of range, no file name.
OPTION_VALUES: list[Any] = [
    float("nan"),
    float("inf"),
    -1,
    2**64,
    True,
    None,
    [],
    {},
    "",
    "\x00",
    "\ud800",
    "n" * 6000,
]


def deeper(template: str) -> list[Any]:
    """Bodies good in shape, with one hostile value where the core checks it."""
    good_nb = json.loads(nbformat.writes(notebook_node(*CELLS)))
    space = {"lr": {"float": [0.01, 0.1]}}
    study = {"notebook": NOTEBOOK, "space": space, "objective": "x"}
    step = {"name": "only", "after": [], "gpus": 0, "image": None}
    texts = [v for v in VALUES if isinstance(v, str)]
    if template == "runs":
        return [
            *({"path": NOTEBOOK, "params": {"n": v}} for v in VALUES),
            *({"path": NOTEBOOK, "param_strings": {"lr": v}} for v in texts),
            *(
                {"path": NOTEBOOK, "options": {option.name: v}}
                for option in LocalBackend.options()
                for v in OPTION_VALUES
            ),
            *({"path": NOTEBOOK, "backend": v} for v in texts),
        ]
    if template == "studies":
        return [
            *({**study, "space": {"lr": v}} for v in VALUES),
            *({**study, "space": {"lr": {"float": [v, 0.1]}}} for v in VALUES),
            *({**study, "space": [{"name": "lr", "parameterType": v}]} for v in VALUES[:8]),
            *(
                {**study, name: v}
                for name in ("trials", "parallel", "seed", "max_failed", "prune", "objective")
                for v in VALUES[:9]
            ),
            *({**study, "initial": [{"lr": v}]} for v in VALUES[:9]),
        ]
    if template == "cells/step":
        base = {"path": NOTEBOOK, "notebook": good_nb, "index": 1, "step": step}
        return [
            *({**base, "index": v} for v in VALUES),
            *({**base, "step": {**step, name: v}} for name in step for v in VALUES[:12]),
        ]
    if template == "pipeline":
        cells = [*good_nb["cells"]]
        return [
            {"path": NOTEBOOK, "notebook": {**good_nb, "cells": [*cells, {"cell_type": v}]}}
            for v in VALUES
        ]
    if template == "studies/{id}/trials":
        return [{"add": v} for v in VALUES]
    return []


def fixed(api: Api, template: str, method: str, known: dict[str, str]) -> list[Request]:
    """The requests every route gets whatever the seed: each raw body, text UTF-8 cannot carry
    echoed back, each hostile path argument, query values that are no UTF-8."""
    real = {"id": known["study" if template.startswith("studies") else "run"], "step": "only"}
    args = {k: v for k, v in real.items() if "{" + k + "}" in template}
    auth = api.auth
    anonymous = {"Cookie": "_xsrf=x", "Authorization": "token \u00e9" + "x" * 1000}
    out = [  # no token, a wrong one: 403 with the error body
        Request(method, template, api.url(template, args), b"{}" if method == "POST" else None, h)
        for h in ({}, anonymous)
    ]
    for name in args:
        for value in PATH_ARGS:
            url = api.url(template, {**args, name: value})
            body = b"{}" if method == "POST" else None
            out.append(Request(method, template, url, body, auth))
    if method == "POST":
        url = api.url(template, args)
        fields = FIELDS.get(template, ("path",))
        objects = [
            {"\ud800": 1, fields[0]: "\ud800"},
            {"x" * 100_000: 1},
            {name: float("nan") for name in fields},
            {name: "\u202e\x00\U0001f600" for name in fields},
        ]
        objects += deeper(template)
        bodies = [*RAW_BODIES, *(json.dumps(o, allow_nan=True).encode() for o in objects)]
        out += [Request(method, template, url, body, auth) for body in bodies]
    elif QUERY.get(template):
        for name in QUERY[template]:
            for value in ("%ED%A0%80", "%FF", "%00", "NaN", "-Infinity", "9" * 5000):
                url = api.url(template, args) + f"?{name}={value}"
                if template == "events":
                    url += "&wait=0"
                out.append(Request(method, template, url, None, auth))
    if template == "events":
        url = api.url(template, args, {"wait": "0"})
        for last in LAST_EVENT_IDS:
            out.append(Request(method, template, url, None, {**auth, "Last-Event-ID": last}))
    return out


# -- checks ---------------------------------------------------------------------------------------
def problems_of(api: Api, request: Request, status: int, headers: Any, text: str) -> list[str]:
    """What is wrong with one answer (nothing: an empty list)."""
    found = []
    if status >= 500:  # 599: no answer at all
        found.append(f"status {status}")
    if "Traceback" in text or 'File "/' in text:
        found.append("a traceback in the body")
    if status >= 400:
        try:
            body = json.loads(text)
        except ValueError:
            return [*found, f"status {status} with a body that is no JSON: {text[:200]!r}"]
        if not isinstance(body, dict) or not {"code", "message", "fix", "where"} <= set(body):
            found.append(f"error body without code, message, fix, where: {text[:200]!r}")
    if status < 599:
        try:
            api.check(request.template, request.method, Reply(status, headers, text))
        except Exception as err:  # the contract's verdict: an assertion or a schema error
            found.append(f"not as the contract says: {str(err)[:300]}")
    return found


async def send(client: AsyncHTTPClient, request: Request) -> tuple[int, Any, str]:
    response = await client.fetch(
        request.url,
        method=request.method,
        body=request.body if request.method == "POST" else None,
        headers=request.headers,
        raise_error=False,
        request_timeout=60,
    )
    return response.code, response.headers, (response.body or b"").decode("utf-8", "replace")


async def fuzz(api: Api, known: dict[str, str]) -> tuple[Counter[int], int, list[str]]:
    rng = random.Random(SEED)
    ops = operations()
    failures: list[str] = []
    statuses: Counter[int] = Counter()

    async def check(request: Request) -> str:
        status, headers, text = await send(api.client, request)
        statuses[status] += 1
        for problem in problems_of(api, request, status, headers, text):
            failures.append(f"{request.describe()} -> {status}: {problem}")
        return text

    def get(template: str, path: dict[str, str] | None = None, **query: str) -> Request:
        return Request("GET", template, api.url(template, path, query or None), None, api.auth)

    for template, method in ops:
        built = [build(rng, api, template, method, known) for _ in range(PER_OPERATION)]
        for request in [*fixed(api, template, method, known), *built]:
            await check(request)
        alive = await send(api.client, get("version"))
        assert alive[0] == 200, f"the server stopped answering after {template} {method}: {alive}"
    # read back every run and study the hostile requests were let start
    for run in json.loads(await check(get("runs", limit="1000")))["runs"]:
        await check(get("runs/{id}", {"id": run["id"]}))
        await check(get("runs/{id}/metrics", {"id": run["id"]}))
        if run["kind"] == "tune":
            await check(get("studies/{id}", {"id": run["id"]}))
    return statuses, len({t for t, _ in ops}), failures


# -- the test -------------------------------------------------------------------------------------
def test_every_route_survives_hostile_input(
    isolated: None,
    jp_asyncio_loop: Any,
    http_server_client: AsyncHTTPClient,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
    jp_root_dir: Path,
    kfnb_home: Path,
) -> None:
    ops = operations()
    assert len({t for t, _ in ops}) == len(ROUTES), "a route whose handler serves no verb"
    nbformat.write(notebook_node(*CELLS), jp_root_dir / NOTEBOOK)
    api = Api(http_server_client, jp_base_url, jp_auth_header, load_contract())

    async def main() -> tuple[Counter[int], int, list[str]]:
        run = await send(
            http_server_client,
            Request(
                "POST", "runs", api.url("runs"), json.dumps({"path": NOTEBOOK}).encode(), api.auth
            ),
        )
        assert run[0] == 201, run
        study = await send(
            http_server_client,
            Request(
                "POST",
                "studies",
                api.url("studies"),
                json.dumps(
                    {
                        "notebook": NOTEBOOK,
                        "space": {"lr": {"float": [0.01, 0.1]}},
                        "objective": "x",
                    }
                ).encode(),
                api.auth,
            ),
        )
        assert study[0] == 201, study
        known = {"run": json.loads(run[2])["id"], "study": json.loads(study[2])["id"]}
        return await fuzz(api, known)

    started = time.monotonic()
    statuses, k, failures = jp_asyncio_loop.run_until_complete(main())
    n = sum(statuses.values())
    took = time.monotonic() - started
    assert not failures, f"{len(failures)} of {n} requests went wrong:\n" + "\n".join(failures[:40])
    seen = ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items()))
    print(f"rest fuzz: {n} requests, {k} routes, 0 server errors ({seen}; {took:.1f} s)")


def test_operations_cover_every_route_and_verb() -> None:
    """The fuzz reads the route table itself: a new route or verb is fuzzed without edits."""
    ops = operations()
    assert ("runs", "GET") in ops and ("runs", "POST") in ops
    assert ("runs/{id}/steps/{step}/notebook", "POST") in ops
    served = {(t, m) for t, m in ops}
    contract = load_contract()["paths"]
    documented = {
        (p.removeprefix("/kfnb/api/"), m.upper())
        for p, verbs in contract.items()
        for m in verbs
        if m != "parameters"
    }
    assert served == documented
