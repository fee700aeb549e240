"""The live server keeps to the written REST contract, server_ext/openapi.yaml.

The other tests of this folder validate every answer they get against it (``api_client.Api``);
these check the contract document itself, that it and the server name the same routes, and
that no route answers a caller who is not authenticated, or not authorized on ``kfnb``.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

import jsonschema
import pytest
from api_client import PREFIX, Api, load_contract, to_json_schema
from jupyter_server.auth import Authorizer

from kfnb.server_ext.base import API_VERSION

CONTRACT = load_contract()
OPERATIONS = [
    (path, method.upper())
    for path, item in CONTRACT["paths"].items()
    for method in item
    if method in ("get", "post", "put", "patch", "delete")
]
COMPONENTS = {
    "Version",
    "Pool",
    "PipelineView",
    "Problem",
    "Step",
    "Edge",
    "Backend",
    "Run",
    "StepRun",
    "RunList",
    "Metric",
    "LogPage",
    "NotebookCopy",
    "Event",
    "EventPage",
    "Error",
}


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def test_the_contract_is_a_consistent_openapi_document() -> None:
    assert CONTRACT["openapi"].startswith("3.0.")
    assert CONTRACT["info"]["version"] == str(API_VERSION)
    schemas = CONTRACT["components"]["schemas"]
    assert set(schemas) >= COMPONENTS
    for ref in refs(CONTRACT):  # every reference resolves
        node: Any = CONTRACT
        assert ref.startswith("#/"), ref
        for part in ref[2:].split("/"):
            assert part in node, f"dangling $ref {ref}"
            node = node[part]
    for name, schema in schemas.items():  # valid JSON Schema once `nullable` is translated
        jsonschema.Draft202012Validator.check_schema(to_json_schema(schema))
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and name not in ("DescribeRequest",)
        ):
            assert schema.get("additionalProperties") is False, f"{name} is not closed"
            assert set(schema["required"]) <= set(schema["properties"]), name
    for path, item in CONTRACT["paths"].items():
        assert path.startswith(PREFIX)
        declared = {p["$ref"].rsplit("/", 1)[1] for p in item.get("parameters", [])}
        named = {CONTRACT["components"]["parameters"][d]["name"] for d in declared}
        assert named == set(re.findall(r"{(\w+)}", path)), path
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert operation["operationId"] and operation["responses"], (path, method)
            assert "403" in operation["responses"], f"{method} {path} documents no 403"


def kfnb_routes(router: Any) -> set[str]:
    """URL patterns under /kfnb/api/ in a tornado router, walking nested routers."""
    found: set[str] = set()
    for rule in getattr(router, "rules", []):
        regex = getattr(rule.matcher, "regex", None)
        if regex is not None and "/kfnb/api/" in regex.pattern:
            found.add(regex.pattern.rstrip("$"))
        found |= kfnb_routes(rule.target)
    return found


def test_the_server_and_the_contract_name_the_same_routes(jp_serverapp: Any) -> None:
    app = jp_serverapp.web_app
    routes = kfnb_routes(app.default_router) | kfnb_routes(app.wildcard_router)
    assert routes, "no kfnb routes found on the server"
    base = app.settings["base_url"].rstrip("/")
    documented = {base + re.sub(r"{\w+}", "([^/]+)", path) for path in CONTRACT["paths"]}
    assert routes == documented, (
        f"undocumented: {sorted(routes - documented)}; not served: {sorted(documented - routes)}"
    )


async def test_version_answers_the_contract_version(api: Api) -> None:
    import kfnb

    body = (await api.get("version", expect=200)).body
    assert body == {"version": kfnb.__version__, "api": int(CONTRACT["info"]["version"])}


@pytest.mark.parametrize(
    ("template", "method"), OPERATIONS, ids=[f"{m} {p[len(PREFIX) :]}" for p, m in OPERATIONS]
)
@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["no-token", "wrong-token"])
async def test_every_route_refuses_unauthenticated_callers(
    api: Api, template: str, method: str, token: str | None
) -> None:
    values = {"id": "20250101-000000-abcd", "step": "train"}
    headers = {"Authorization": f"token {token}"} if token else {}
    reply = await api.call(
        method,
        template[len(PREFIX) :],
        path=values,
        auth=False,
        headers=headers,
        query={"path": "x.ipynb"},
        body={"path": "x.ipynb"} if method == "POST" else None,
    )
    assert reply.status == 403, reply.text
    assert json.loads(reply.text)["code"] == 403  # the Error schema was checked by `api`


class DenyKfnb(Authorizer):
    """Lets a user do everything but touch the resource ``kfnb``; records what was asked."""

    asked: ClassVar[list[tuple[str, str]]] = []

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        self.asked.append((action, resource))
        return resource != "kfnb"


@pytest.mark.parametrize(
    "jp_server_config",
    [
        {
            "ServerApp": {
                "jpserver_extensions": {"kfnb": True, "jupyter_server_terminals": False},
                "allow_unauthenticated_access": False,
                "authorizer_class": DenyKfnb,
            },
            "KfnbServerSettings": {"pool_size": 0, "refresh_interval": 0},
        }
    ],
)
@pytest.mark.parametrize(
    ("template", "method"), OPERATIONS, ids=[f"{m} {p[len(PREFIX) :]}" for p, m in OPERATIONS]
)
async def test_every_route_is_authorized_on_the_kfnb_resource(
    api: Api, template: str, method: str
) -> None:
    DenyKfnb.asked.clear()
    reply = await api.call(
        method,
        template[len(PREFIX) :],
        path={"id": "20250101-000000-abcd", "step": "train"},
        body={"path": "x.ipynb"} if method == "POST" else None,
    )
    assert reply.status == 403, reply.text
    assert "not authorized" in reply.body["message"]
    assert DenyKfnb.asked == [("read" if method == "GET" else "write", "kfnb")]
