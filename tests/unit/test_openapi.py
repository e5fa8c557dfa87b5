"""The published contract, as a document: every route and every code of the error table in
it, every answer an envelope. (tests/http/test_openapi.py: the app serves it and keeps it.)"""

from __future__ import annotations

from typing import Any

from userprops.errors import CODE_TABLE
from userprops.http import openapi
from userprops.http.routes import ROUTES

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def test_every_route_is_documented_and_nothing_else() -> None:
    served = {(path, method.lower()) for path, methods in ROUTES.items() for method in methods}
    documented = {
        (path, method)
        for path, item in openapi.document()["paths"].items()
        for method in item
        if method in METHODS
    }
    assert documented == served


def codes_in(node: Any) -> set[int]:
    """Every code an ``enum`` or ``const`` of a ``code`` property allows."""
    found: set[int] = set()
    if isinstance(node, dict):
        code = node.get("properties", {}).get("code", {})
        found.update(code.get("enum", []))
        if "const" in code:
            found.add(code["const"])
        for value in node.values():
            found |= codes_in(value)
    elif isinstance(node, list):
        for value in node:
            found |= codes_in(value)
    return found


def test_every_code_of_the_error_table_is_documented_with_its_status() -> None:
    document = openapi.document()
    table = document["info"]["description"]
    for error in CODE_TABLE:
        assert f"| {error.code} | {error.status} | {error.message} |" in table
    answered = {error.code for error in CODE_TABLE if error not in openapi.NOT_OVER_HTTP}
    assert codes_in(document) == {0} | answered
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for status, answer in operation["responses"].items():
                if "application/json" not in answer["content"]:
                    continue  # /metrics' text answer
                schema = answer["content"]["application/json"]["schema"]
                for code in set(schema.get("properties", {}).get("code", {}).get("enum", [])):
                    [error] = [e for e in CODE_TABLE if e.code == code]
                    assert str(error.status) == status


def test_every_operation_answers_with_the_envelope() -> None:
    for path, path_item in openapi.document()["paths"].items():
        for operation in path_item.values():
            for status, answer in operation["responses"].items():
                if (path, status) == ("/metrics", "200"):
                    assert list(answer["content"]) == ["text/plain"]
                    continue
                schema = answer["content"]["application/json"]["schema"]
                if path != "/openapi.json" and "$ref" not in schema:
                    assert schema["required"] == ["code", "message"]
