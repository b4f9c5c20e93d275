"""What the FAKE Graph's resource routes share: OData query options, paging, ETags, strict bodies.

From learn.microsoft.com: graph/query-parameters ($select, $expand, $top, $skip; ``@odata.nextLink``
is an absolute URL to GET as it is), graph/paging, graph/api/singlevaluelegacyextendedproperty-get
(``$expand=singleValueExtendedProperties($filter=id eq '{id}')``: only the properties named come
back; without the $expand none do), graph/api/singlevaluelegacyextendedproperty-post-
singlevalueextendedproperties (``singleValueExtendedProperties: [{id, value}]`` in a POST or PATCH
body), graph/errors (400 for a property the type does not have, 412 for a stale If-Match).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from mailferry.sandbox.graph.server import Answer, error

if TYPE_CHECKING:
    from mailferry.sandbox.graph.server import Call, FakeGraph
    from mailferry.sandbox.graph.store import FakeItem

PROPS = "singleValueExtendedProperties"
_FILTER = re.compile(r"singleValueExtendedProperties\(\$filter=(?P<f>.*)\)\Z", re.IGNORECASE)
_ID_EQ = re.compile(r"id eq '([^']+)'", re.IGNORECASE)
_PROP_ID = re.compile(r"(String|Integer|Boolean|Binary|SystemTime) \{[0-9a-fA-F-]{36}\} (Name \S+|Id 0x[0-9a-fA-F]{1,4})\Z")  # fmt: skip
DEFAULT_TOP = 10  # events, contacts: Graph's default page size


def unknown_fields(body: Any, allowed: frozenset[str], type_name: str) -> Answer | None:
    if not isinstance(body, dict):
        return error(400, "BadRequest", "Empty Payload. JSON content expected.")
    for name in body:
        if name not in allowed and not name.startswith("@odata."):
            return error(
                400,
                "RequestBodyRead",
                f"The property '{name}' does not exist on type '{type_name}'. Make sure to only "
                "use property names that are defined by the type or mark the type as open type.",
            )
    return None


def extended(body: dict[str, Any], current: dict[str, str]) -> Answer | dict[str, str]:
    """The item's extended properties after ``body`` sets some (ids checked as Graph's are)."""
    merged = dict(current)
    for prop in body.get(PROPS) or []:
        prop_id = str(prop.get("id", ""))
        if not _PROP_ID.match(prop_id) or "value" not in prop:
            return error(400, "ErrorInvalidExtendedPropertyValue", f"Invalid property: {prop_id}")
        merged[prop_id.lower()] = str(prop["value"])
    return merged


def shown(call: Call, resource: dict[str, Any], props: dict[str, str]) -> dict[str, Any]:
    """``resource`` as $select and $expand ask for it."""
    selected = call.query.get("$select")
    out = dict(resource)
    if selected:
        keep = {s.strip() for s in selected.split(",")} | {"id"}
        out = {k: v for k, v in out.items() if k in keep}
    expand = call.query.get("$expand", "")
    match = _FILTER.match(expand.strip())
    if match:
        wanted = {m.lower() for m in _ID_EQ.findall(match.group("f"))}
        out[PROPS] = [
            {"id": _original(i, call), "value": v} for i, v in props.items() if i in wanted
        ]
    return out


def _original(prop_id: str, call: Call) -> str:
    for found in _ID_EQ.findall(call.query.get("$expand", "")):
        if found.lower() == prop_id:
            return str(found)
    return prop_id


def page(fake: FakeGraph, call: Call, values: list[dict[str, Any]]) -> Answer:
    """One page of ``values`` ($top, $skip), with ``@odata.nextLink`` when more follow."""
    try:
        top = int(call.query.get("$top", DEFAULT_TOP))
        skip = int(call.query.get("$skip", 0))
    except ValueError:
        return error(400, "BadRequest", "Invalid $top or $skip")
    body: dict[str, Any] = {"value": values[skip : skip + top]}
    if skip + top < len(values):
        query = dict(call.query, **{"$skip": str(skip + top), "$top": str(top)})
        body["@odata.nextLink"] = f"{fake.url}/v1.0{call.path}?{urlencode(query)}"
    return Answer(200, body)


def precondition(call: Call, item: FakeItem) -> Answer | None:
    """412 when If-Match names another version than the item's (graph/errors)."""
    wanted = call.headers.get("if-match")
    if wanted is None or wanted == "*":
        return None
    tag = wanted.removeprefix("W/").strip('"')
    if tag != item.change_key:
        return error(
            412,
            "ErrorIrresolvableConflict",
            "The send or update operation could not be performed because the change key passed "
            "in the request does not match the current change key for the item.",
        )
    return None


def etag(item: FakeItem) -> str:
    return f'W/"{item.change_key}"'
