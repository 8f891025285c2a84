"""An OpenAPI 3.1 description generated from a route table and msgspec types, and a
dependency-free HTML page that renders it (``/docs``: no CDN, no JavaScript).

Schemas come from :func:`msgspec.json.schema_components`, the same types the server
decodes requests into and encodes responses from.
"""

from __future__ import annotations

import html
import json
from typing import Any

import attrs
import msgspec

REF = "#/components/schemas/{name}"


@attrs.frozen
class Operation:
    """One route: ``method`` (lower case) on an OpenAPI ``path`` template."""

    method: str
    path: str
    summary: str
    response: type
    request: type | None = None
    body_optional: bool = False
    errors: tuple[int, ...] = ()
    description: str = ""


ERROR_TEXT = {400: "bad request (names the field or limit)", 401: "missing or invalid bearer token",
              404: "unknown (or another token's) resource", 405: "wrong method", 408: "request too slow (a timeout limit)",
              409: "the episode has ended (its outcome is attached)", 413: "request or argument too large (a size limit)",
              422: "arguments the tool does not take", 429: "too many open episodes", 503: "shutting down"}


def openapi(title: str, version: str, description: str, operations: list[Operation], error_type: type,
            path_params: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI document. ``path_params``: a description per ``{name}`` in the paths."""
    types: list[Any] = [error_type]
    for op in operations:
        types.append(op.response)
        if op.request is not None:
            types.append(op.request)
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    ref = dict(zip(map(id, types), schemas))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        entry: dict[str, Any] = {"summary": op.summary, "operationId": _operation_id(op)}
        if op.description:
            entry["description"] = op.description
        params = [name.strip("{}") for name in op.path.split("/") if name.startswith("{")]
        if params:
            entry["parameters"] = [{"name": p, "in": "path", "required": True, "description": path_params.get(p, ""),
                                    "schema": {"type": "string"}} for p in params]
        if op.request is not None:
            entry["requestBody"] = {"required": not op.body_optional,
                                    "content": {"application/json": {"schema": ref[id(op.request)]}}}
        responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ref[id(op.response)]}}}}
        for status in sorted({401, *op.errors}):
            responses[str(status)] = {"description": ERROR_TEXT.get(status, "error"),
                                      "content": {"application/json": {"schema": ref[id(error_type)]}}}
        entry["responses"] = responses
        paths.setdefault(op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "required when the server was started with tokens"}}},
        "security": [{"bearer": []}, {}],
    }


def _operation_id(op: Operation) -> str:
    words = [w for w in op.path.replace("{", "").replace("}", "").split("/") if w and w != "v1"]
    return op.method + "_" + "_".join(words)


def docs_html(spec: dict[str, Any]) -> bytes:
    """A static page listing every operation with its request and response schemas."""
    info = spec["info"]
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info['title'])}</title>",
           "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
           "pre{background:#f4f4f4;padding:.6em;overflow-x:auto}code{background:#f4f4f4}h2{margin-top:2em}</style>",
           f"</head><body><h1>{html.escape(info['title'])} <small>{html.escape(info['version'])}</small></h1>",
           f"<p>{html.escape(info['description'])}</p><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>"]
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            out.append(f"<h2><code>{method.upper()} {html.escape(path)}</code></h2><p>{html.escape(op['summary'])}</p>")
            if op.get("description"):
                out.append(f"<p>{html.escape(op['description'])}</p>")
            body = op.get("requestBody")
            if body:
                out.append(f"<p>Request body: {_schema_link(body['content']['application/json']['schema'])}</p>")
            for status, resp in op["responses"].items():
                schema = resp["content"]["application/json"]["schema"]
                out.append(f"<p>{status}: {html.escape(resp['description'])} {_schema_link(schema)}</p>")
    out.append("<h2>Schemas</h2>")
    for name, schema in spec["components"]["schemas"].items():
        out.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3><pre>{html.escape(json.dumps(schema, indent=2))}</pre>")
    out.append("</body></html>")
    return "\n".join(out).encode()


def _schema_link(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    return f"<a href='#{html.escape(name)}'>{html.escape(name)}</a>" if name else html.escape(json.dumps(schema))
