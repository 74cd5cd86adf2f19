"""Check real HTTP answers against the OpenAPI document the app generates.

``OpenApiContract(document).check(method, path, status, body)`` finds the documented
operation for a concrete path, and fails when the status is not documented for it or the
JSON body does not validate against the documented schema (OpenAPI 3.1 dialect,
``additionalProperties: false`` from the models' ``extra="forbid"``, formats checked).
Answers of undocumented operations (the JSON 405 and 404 fallbacks) are not checked.
"""

from __future__ import annotations

import re
from typing import Any

from jsonschema import FormatChecker
from openapi_schema_validator import OAS31Validator

SLASHED = frozenset({"/api/blobs/{name}"})  # path parameters that may contain "/"


def _pattern(template: str) -> re.Pattern[str]:
    value = ".+" if template in SLASHED else "[^/]+"
    return re.compile("^" + re.sub(r"\{[^}/]+\}", value, template) + "$")


class OpenApiContract:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.paths = [(_pattern(p), p) for p in document["paths"]]
        self.checked: set[tuple[str, str, str]] = set()

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self.paths:
            if pattern.match(path):
                found = self.document["paths"][template].get(method.lower())
                return (template, found) if found else None
        return None

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> None:
        if method.upper() == "HEAD":
            return
        found = self.operation(method, path)
        if found is None:
            return
        template, operation = found
        answers = operation["responses"]
        assert str(status) in answers, (
            f"{method} {template} answered {status}, which the document does not list"
        )
        documented = answers[str(status)].get("content", {})
        if content_type.startswith("application/json"):
            assert "application/json" in documented, (
                f"{method} {template} {status}: JSON answer, none documented"
            )
            schema = documented["application/json"].get("schema", {})
            validator = OAS31Validator(
                {**schema, "components": self.document["components"]},
                format_checker=FormatChecker(),
            )
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
            assert not errors, (
                f"{method} {template} {status} does not match the document: "
                + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
            )
        else:
            assert not documented or any(
                t.split("/")[0] == content_type.split("/")[0] for t in documented
            ), f"{method} {template} {status}: {content_type} not documented"
        self.checked.add((template, method.lower(), str(status)))
