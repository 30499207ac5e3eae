"""Check response bodies against UiPath's own OpenAPI description of Orchestrator.

The description is ``tests/spec/orchestrator.yaml`` (OpenAPI 3.0.1, "UiPath.WebApi
20.0"), copied unchanged from UiPath/uipathcli. Usage::

    from openapi_contract import validate_response

    validate_response("GET", "/odata/Jobs", 200, body)
    validate_response("POST", "/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs", 201, body)

``path`` is relative to the ``.../orchestrator_`` base. Any violation raises
AssertionError listing every problem with its JSON path.

How the description is read
---------------------------
* Each schema is checked by openapi-schema-validator's ``OAS30ReadValidator``
  (the response flavour of OpenAPI 3.0 schemas), with formats checked: date-time
  (RFC 3339: an offset such as ``Z`` is required, any number of fractional
  digits), uuid, int32/int64 ranges. openapi-core is not used: it refuses to
  load this description unless its own spec validation is switched off (the
  ``TenantDto.Name`` pattern ``^[\\p{L}]...`` is not a Python regex), it matches
  on full server URLs, and it reports nested errors less readably.
* Nulls. The description has no ``nullable: true`` anywhere, so read literally it
  forbids every null, yet its own texts say "... or null if the job hasn't
  started yet" and real responses carry nulls (``"StartTime": null``,
  ``"ParentId": null``). By default a null is therefore accepted for a property
  that its schema does not list as ``required`` (what .NET emits for an unset
  optional value) and refused for a required one. ``allow_null_optionals=False``
  applies the description to the letter.
* The description never forbids undeclared properties (no ``additionalProperties:
  false`` on the schemas these endpoints use), so a misspelt property passes;
  ``forbid_undeclared=True`` reports them (OData annotations such as
  ``@odata.count`` excepted).
* OData envelopes. The ``ODataValueOfIEnumerableOf...`` schemas declare only an
  optional ``value``; they neither require it nor mention ``@odata.context`` or
  ``@odata.count``. The OData JSON format does (a collection is ``{"value":
  [...]}``, ``@odata.count`` an integer, ``@odata.context`` a URL string), so those
  three checks are added for such envelopes, and reported as OData rules.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend
from openapi_schema_validator import OAS30ReadValidator
from referencing import Registry
from referencing.jsonschema import DRAFT4

__all__ = ["SPEC_PATH", "load_contract", "operation_id_for", "validate_response"]

SPEC_PATH = Path(__file__).parent / "spec" / "orchestrator.yaml"
_SPEC_URI = "urn:uipath:orchestrator:openapi"
_ENVELOPE_PREFIX = "ODataValueOfIEnumerableOf"
_MAX_LISTED = 40


@dataclass(frozen=True)
class Operation:
    """One (method, path template) of the description."""

    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    integer_params: frozenset[str]
    responses: Mapping[str, Any]


@dataclass
class Contract:
    """The loaded description: operations to match paths, and a $ref registry."""

    spec: Mapping[str, Any]
    operations: list[Operation]
    registry: Registry[Any]
    load_seconds: float
    _validators: dict[tuple[str, bool, bool], Any] = field(default_factory=dict)

    def validator(
        self, pointer: str, *, allow_null_optionals: bool, forbid_undeclared: bool
    ) -> Any:
        """Return a (cached) validator for the schema at ``pointer`` in the description."""
        key = (pointer, allow_null_optionals, forbid_undeclared)
        if key not in self._validators:
            cls = _validator_class(allow_null_optionals, forbid_undeclared)
            self._validators[key] = cls(
                {"$ref": f"{_SPEC_URI}#{pointer}"},
                registry=self.registry,
                format_checker=cls.FORMAT_CHECKER,
            )
        return self._validators[key]


def _template_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(
        re.escape(part) if index % 2 == 0 else f"(?P<{part}>[^/()]+)"
        for index, part in enumerate(parts)
    )
    return re.compile(regex)


def _operations(spec: Mapping[str, Any]) -> list[Operation]:
    found = []
    for template, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method, op in item.items():
            if method not in {"get", "put", "post", "delete", "patch", "head", "options"}:
                continue
            params = [*shared, *op.get("parameters", [])]
            integer_params = frozenset(
                p["name"]
                for p in params
                if p.get("in") == "path" and p.get("schema", {}).get("type") == "integer"
            )
            found.append(
                Operation(
                    method=method.upper(),
                    template=template,
                    operation_id=op.get("operationId", f"{method.upper()} {template}"),
                    pattern=_template_pattern(template),
                    integer_params=integer_params,
                    responses=op.get("responses", {}),
                )
            )
    return found


@functools.cache
def load_contract() -> Contract:
    """Load and index the description once per process (about a second: YAML parsing)."""
    started = time.perf_counter()
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml is ~10x faster
    with SPEC_PATH.open(encoding="utf-8") as stream:
        spec = yaml.load(stream, Loader=loader)
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, DRAFT4.create_resource(spec))
    return Contract(
        spec=spec,
        operations=_operations(spec),
        registry=registry,
        load_seconds=time.perf_counter() - started,
    )


# ------------------------------------------------------------ validator class


def _properties_keyword(allow_null_optionals: bool, forbid_undeclared: bool) -> Any:
    def properties(
        validator: Any, properties: Mapping[str, Any], instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        if not validator.is_type(instance, "object"):
            return
        required = set(schema.get("required", ()))
        for name, subschema in properties.items():
            if name not in instance:
                continue
            if allow_null_optionals and instance[name] is None and name not in required:
                continue
            yield from validator.descend(instance[name], subschema, path=name, schema_path=name)
        if forbid_undeclared and "additionalProperties" not in schema:
            for name in instance:
                if name not in properties and "@" not in name:
                    yield ValidationError(
                        f"{name!r} is not a property of this schema (forbid_undeclared=True)",
                        path=[name],
                    )

    return properties


@functools.cache
def _validator_class(allow_null_optionals: bool, forbid_undeclared: bool) -> Any:
    if not allow_null_optionals and not forbid_undeclared:
        return OAS30ReadValidator
    return extend(
        OAS30ReadValidator,
        {"properties": _properties_keyword(allow_null_optionals, forbid_undeclared)},
    )


# ----------------------------------------------------------------- matching


def _escape_pointer(*segments: str) -> str:
    return "".join("/" + quote(s.replace("~", "~0").replace("/", "~1"), safe="") for s in segments)


def operation_id_for(method: str, path: str) -> str:
    """Return the operationId that serves ``method path`` (AssertionError if none)."""
    return _find_operation(load_contract(), method, path).operation_id


def _find_operation(contract: Contract, method: str, path: str) -> Operation:
    path = path.split("?", 1)[0]
    if not path.startswith("/"):
        raise AssertionError(f"path {path!r} must start with '/', e.g. '/odata/Jobs'")
    method = method.upper()
    candidates = []
    for op in contract.operations:
        match = op.pattern.fullmatch(path)
        if match is None:
            continue
        bad = [n for n in op.integer_params if not re.fullmatch(r"-?\d+", match.group(n))]
        if bad:
            continue
        candidates.append(op)
    if not candidates:
        raise AssertionError(f"the OpenAPI description has no path matching {path!r}")
    for_method = [op for op in candidates if op.method == method]
    if not for_method:
        methods = sorted({op.method for op in candidates})
        raise AssertionError(
            f"the OpenAPI description has no {method} operation on {path!r} "
            f"(it has {', '.join(methods)})"
        )
    # A literal path beats a templated one, as in OpenAPI path matching.
    return max(for_method, key=lambda op: len(re.sub(r"\{\w+\}", "", op.template)))


def _pick_response(op: Operation, status: int) -> tuple[str, Mapping[str, Any]]:
    for key in (str(status), f"{status // 100}XX", "default"):
        if key in op.responses:
            return key, op.responses[key]
    declared = ", ".join(sorted(op.responses)) or "none"
    raise AssertionError(
        f"{op.operation_id} ({op.method} {op.template}) declares no response {status} "
        f"(declared: {declared})"
    )


def _pick_media_type(op: Operation, status_key: str, content: Mapping[str, Any], ct: str) -> str:
    wanted = ct.replace(" ", "").lower()
    base = wanted.split(";", 1)[0]
    for candidate in (wanted, base):
        for media_type in content:
            if media_type.replace(" ", "").lower() == candidate:
                return str(media_type)
    raise AssertionError(
        f"{op.operation_id} response {status_key} has no content type {ct!r} "
        f"(declared: {', '.join(content)})"
    )


# ---------------------------------------------------------------- messages


def _where(error: ValidationError) -> str:
    return str(error.json_path)


def _describe(error: ValidationError, *, allow_null_optionals: bool) -> str:
    if error.validator == "type" and error.instance is None:
        if allow_null_optionals:
            return "null is not allowed here (a required property, or an array item)"
        return "null is not allowed (the description marks nothing nullable)"
    if error.validator == "enum":
        allowed = ", ".join(dict.fromkeys(str(v) for v in error.validator_value))
        return f"{error.instance!r} is not one of: {allowed}"
    return str(error.message)


def _envelope_problems(schema_name: str, body: Any) -> list[str]:
    if not isinstance(body, dict):
        return []
    problems = []
    if "value" not in body:
        problems.append(f"$: an OData collection ({schema_name}) must have a 'value' array")
    count = body.get("@odata.count")
    if "@odata.count" in body and (
        not isinstance(count, int) or isinstance(count, bool) or count < 0
    ):
        problems.append(f"$['@odata.count']: {count!r} is not a non-negative integer (OData)")
    if "@odata.context" in body and not isinstance(body["@odata.context"], str):
        problems.append(f"$['@odata.context']: {body['@odata.context']!r} is not a string (OData)")
    return problems


def validate_response(
    method: str,
    path: str,
    status: int,
    body: Any,
    *,
    content_type: str = "application/json",
    allow_null_optionals: bool = True,
    forbid_undeclared: bool = False,
) -> None:
    """Assert that ``body`` is what the OpenAPI description promises for this response.

    Args:
        method: the HTTP method, any case.
        path: the request path relative to the orchestrator base, e.g.
            ``"/odata/Jobs(5)"``; a query string is ignored.
        status: the response status code.
        body: the parsed JSON body; ``None`` (or ``""``/``b""``) for an empty body.
        content_type: the response's Content-Type; parameters such as
            ``odata.metadata=minimal`` fall back to the bare media type.
        allow_null_optionals: accept null for properties not listed as required
            (see the module docstring); False applies the description literally.
        forbid_undeclared: report properties the schema does not declare.

    Raises:
        AssertionError: unknown path or operation, undeclared status or content
            type, or a body that violates the schema, with every violation listed.
    """
    contract = load_contract()
    op = _find_operation(contract, method, path)
    status_key, response = _pick_response(op, status)
    content = response.get("content") or {}
    where = f"{op.operation_id} ({op.method} {path}) response {status}"
    if not content:
        if body not in (None, "", b""):
            raise AssertionError(f"{where}: the description declares no body, got {body!r:.200}")
        return
    media_type = _pick_media_type(op, status_key, content, content_type)
    pointer = _escape_pointer("paths", op.template, op.method.lower(), "responses", status_key)
    pointer += _escape_pointer("content", media_type, "schema")
    validator = contract.validator(
        pointer, allow_null_optionals=allow_null_optionals, forbid_undeclared=forbid_undeclared
    )
    problems = [
        f"{_where(error)}: {_describe(error, allow_null_optionals=allow_null_optionals)}"
        for error in validator.iter_errors(body)
        # The OAS 3.0 'type' keyword reports a null twice; keep the clearer line.
        if not (
            error.validator == "type" and error.instance is None and "nullable" in error.message
        )
    ]
    schema_ref = content[media_type].get("schema", {}).get("$ref", "")
    schema_name = schema_ref.rsplit("/", 1)[-1]
    if schema_name.startswith(_ENVELOPE_PREFIX):
        problems.extend(_envelope_problems(schema_name, body))
    if problems:
        problems = list(dict.fromkeys(problems))
        shown = problems[:_MAX_LISTED]
        if len(problems) > _MAX_LISTED:
            shown.append(f"... and {len(problems) - _MAX_LISTED} more")
        schema_label = schema_name or "inline schema"
        listing = "\n  ".join(shown)
        raise AssertionError(
            f"{where} does not match {schema_label} ({len(problems)} problem(s)):\n  {listing}"
        )
