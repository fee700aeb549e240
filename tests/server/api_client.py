"""Helpers of the server tests: the contract (server_ext/openapi.yaml) as JSON Schema, a REST
client that validates every answer against it, and notebooks built from cells."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import jsonschema
import nbformat
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from tornado.httpclient import AsyncHTTPClient, HTTPResponse

PREFIX = "/kfnb/api/"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELED"}


# -- the contract -------------------------------------------------------------------------------
def load_contract() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(
        files("kfnb.server_ext").joinpath("openapi.yaml").read_text()
    )
    return spec


def to_json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema: ``nullable: true`` -> also ``null``."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {
        k: (
            {name: to_json_schema(p) for name, p in v.items()}  # names, not a schema
            if k == "properties"
            else to_json_schema(v)
        )
        for k, v in node.items()
        if k != "nullable"
    }
    if node.get("nullable") is True:
        return {"anyOf": [out, {"type": "null"}]}
    return out


def schema_of(contract: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema of the contract, with the components its ``$ref``s point at."""
    return {**to_json_schema(schema), "components": to_json_schema(contract["components"])}


def validate(contract: dict[str, Any], value: Any, schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(schema_of(contract, schema)).validate(value)


def component(contract: dict[str, Any], name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def response_spec(
    contract: dict[str, Any], template: str, method: str, status: int
) -> dict[str, Any]:
    operation = contract["paths"][PREFIX + template][method.lower()]
    responses = operation["responses"]
    assert str(status) in responses, (
        f"{method} {template} answered {status}, which the contract does not document "
        f"(documented: {', '.join(responses)})"
    )
    spec: dict[str, Any] = responses[str(status)]
    if "$ref" in spec:
        spec = contract["components"]["responses"][spec["$ref"].rsplit("/", 1)[1]]
    return spec


def parse_sse(text: str) -> list[dict[str, str]]:
    """Server-sent events as dicts of their fields (comments dropped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(": ")
            fields[key] = value
        if fields:
            events.append(fields)
    return events


# -- the client -----------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    headers: Any
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)


class Api:
    """Calls ``<base_url>/kfnb/api/<template>`` and checks each answer against the contract."""

    def __init__(
        self, client: AsyncHTTPClient, base: str, auth: dict[str, str], contract: dict[str, Any]
    ) -> None:
        self.client = client
        self.base = base
        self.auth = auth
        self.contract = contract

    def url(
        self,
        template: str,
        path: dict[str, str] | None = None,
        query: dict[str, Any] | list[tuple[str, Any]] | None = None,
    ) -> str:
        route = template
        for key, value in (path or {}).items():
            route = route.replace("{" + key + "}", urllib.parse.quote(value, safe=""))
        url = self.base.rstrip("/") + PREFIX + route
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        return url

    async def call(
        self,
        method: str,
        template: str,
        *,
        path: dict[str, str] | None = None,
        query: dict[str, Any] | list[tuple[str, Any]] | None = None,
        body: Any = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        expect: int | None = None,
    ) -> Reply:
        all_headers = {**(self.auth if auth else {}), **(headers or {})}
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        if method == "POST" and data is None:
            data = b""
        response: HTTPResponse = await self.client.fetch(
            self.url(template, path, query),
            method=method,
            body=data,
            headers=all_headers,
            raise_error=False,
            request_timeout=60,
        )
        reply = Reply(response.code, response.headers, response.body.decode("utf-8"))
        self.check(template, method, reply)
        if expect is not None:
            assert reply.status == expect, f"{method} {template}: {reply.status} {reply.text}"
        return reply

    def check(self, template: str, method: str, reply: Reply) -> None:
        spec = response_spec(self.contract, template, method, reply.status)
        kind = reply.headers.get("Content-Type", "").split(";")[0].strip()
        assert kind in spec["content"], f"{method} {template}: content type {kind!r}"
        if kind == "application/json":
            validate(self.contract, reply.body, spec["content"][kind]["schema"])
            if reply.status >= 400:
                assert reply.body["code"] == reply.status
        elif kind == "text/event-stream":
            for event in parse_sse(reply.text):
                validate(
                    self.contract, json.loads(event["data"]), component(self.contract, "Event")
                )

    async def get(self, template: str, **kw: Any) -> Reply:
        return await self.call("GET", template, **kw)

    async def post(self, template: str, **kw: Any) -> Reply:
        return await self.call("POST", template, **kw)

    async def wait_run(
        self, run_id: str, statuses: set[str] = TERMINAL, timeout: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run: dict[str, Any] = (
                await self.get("runs/{id}", path={"id": run_id}, expect=200)
            ).body
            if run["status"] in statuses:
                return run
            assert time.monotonic() < deadline, f"run {run_id} stayed {run['status']}: {run}"
            await asyncio.sleep(0.1)


# -- notebooks ------------------------------------------------------------------------------------
Write = Callable[..., str]


def notebook_node(*cells: Any) -> nbformat.NotebookNode:
    """A notebook from cells: ``"code"``, ``("tag", "code")``, ``(["t1", "t2"], "code")`` or
    ``("#md", "markdown text")``."""
    nb = new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}
        }
    )
    for spec in cells:
        if isinstance(spec, str):
            nb.cells.append(new_code_cell(spec))
            continue
        tags, source = spec
        if tags == "#md":
            nb.cells.append(new_markdown_cell(source))
            continue
        tags = [tags] if isinstance(tags, str) else list(tags)
        nb.cells.append(new_code_cell(source, metadata={"tags": tags}))
    return nb
