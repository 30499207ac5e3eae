"""The OData query subset that the simulator's list endpoints understand.

Theory of operation
-------------------
:func:`parse_query` reads the request's ``$`` options once and turns them into a
frozen :class:`ODataQuery`. Every property name and literal is checked against
the entity's fields at that point, so a bad query fails with an
:class:`ODataError` (a 400 for the caller) and :func:`apply_query` never has to
judge user input. ``apply_query`` then works on plain JSON-shaped dicts, in the
order OData prescribes: filter, orderby, count (before paging), skip, top, select.

Supported
~~~~~~~~~
* ``$filter``: ``eq ne lt gt le ge``, ``in (...)``, ``and``, ``or``, ``not``,
  parentheses, and a bare boolean property (``IsActive``). The string functions
  ``contains``, ``startswith``, ``endswith`` (alone or ``eq true``/``false``) and
  ``tolower``/``toupper`` around a property; navigation paths such as
  ``Robot/Id`` or ``Release/Name`` where the entity declares them. Literals: integers
  (``123``, ``123L``), ``'strings'`` (``''`` escapes a quote), GUIDs (bare or
  quoted), bare or quoted DateTimeOffsets, ``null``, ``true``/``false``, and
  enum literals (``'Faulted'`` or ``UiPath.Core.Enums.JobState'Faulted'``).
* ``$select``, ``$orderby`` (up to 5 clauses, ``asc``/``desc``), ``$top``,
  ``$skip``, ``$count``.
* ``$expand`` is accepted and ignored: the simulator never inlines related
  entities. ``$format`` is accepted when it asks for JSON.

Everything else (other functions such as ``length()``, arithmetic, ``has``,
lambda operators, undeclared paths, other ``$`` options) is an ODataError that
names the offending part. Operators, keywords and functions are lower-case, as
in the OData ABNF. ``substringof`` is OData v2/v3 only: the v4 URI parser that
serves Orchestrator refuses it as an unknown function (the message below is
Microsoft.OData's, quoted in OData/WebApi#696 and
MicrosoftDocs/dynamics365smb-devitpro-pb#1776); the simulator says so and names
``contains``. String functions compare as written (case-sensitive), as OData
specifies. UNCONFIRMED: Orchestrator's database collation may make them
case-insensitive.

Semantics follow OData v4 (URL Conventions, "Logical Operators"): ``null eq
null`` is true; ``lt``/``gt``/``le``/``ge`` with a null operand are false;
DateTimeOffsets compare as instants, whatever their fractional digits or
offset. Error texts follow the wording of Microsoft's ASP.NET OData libraries
where it is known, since the Orchestrator API is served by them (its
``UiPath.Server.Configuration.OData`` actions and ``ODataValueOf...``
envelopes).
"""

from __future__ import annotations

import dataclasses
import enum
import operator
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

__all__ = [
    "FieldKind",
    "ODataError",
    "ODataQuery",
    "apply_query",
    "parse_query",
    "required_values",
]

# OData documents these limits for every Orchestrator list endpoint (spec:
# "The maximum number of expressions is 100", "... is 5", "The maximum value is 1000").
MAX_FILTER_NODES = 100
# Nested parentheses in $filter. UNCONFIRMED: ASP.NET OData stops at a recursion
# limit of its own (its message is used below); 100 keeps this recursive parser far
# from Python's recursion limit, so 1,000 nested groups are a 400, not a crash.
MAX_FILTER_DEPTH = 100
MAX_ORDERBY_CLAUSES = 5


class FieldKind(enum.Enum):
    """How a property's JSON value is typed, named after its EDM type."""

    INT = "Edm.Int64"
    STRING = "Edm.String"
    GUID = "Edm.Guid"
    DATETIME = "Edm.DateTimeOffset"
    ENUM = "Edm.Enum"
    BOOL = "Edm.Boolean"


class ODataError(Exception):
    """An unsupported or malformed query.

    ``message`` is a user-facing sentence naming the bad part, e.g.
    "Could not find a property named 'Foo' on type 'JobDto'.".
    """

    message: str

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --------------------------------------------------------------------------- AST

# A literal or row value after normalisation for its FieldKind: int for INT,
# str for STRING and lower-case GUIDs, int nanoseconds since the epoch for
# DATETIME, bool for BOOL, (rank, name) for ENUM, None for null.
Value: TypeAlias = Any


@dataclass(frozen=True, slots=True)
class Comparison:
    """``Prop op literal`` with op one of eq, ne, lt, gt, le, ge."""

    prop: str
    kind: FieldKind
    op: str
    value: Value
    members: tuple[str, ...] | None = None
    case: str | None = None  # "tolower" or "toupper" applied to the property first


@dataclass(frozen=True, slots=True)
class StringCall:
    """``contains(Prop,'x')``, ``startswith(...)`` or ``endswith(...)``."""

    function: str
    prop: str
    value: str
    case: str | None = None


@dataclass(frozen=True, slots=True)
class InList:
    """``Prop in (literal, ...)``."""

    prop: str
    kind: FieldKind
    values: tuple[Value, ...]
    members: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class BoolProperty:
    """A boolean property used as a predicate on its own (``$filter=IsActive``)."""

    prop: str


@dataclass(frozen=True, slots=True)
class Constant:
    """``true`` or ``false`` used as a predicate."""

    value: bool


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr


Expr: TypeAlias = Comparison | InList | StringCall | BoolProperty | Constant | Not | And | Or


@dataclass(frozen=True, slots=True)
class OrderClause:
    prop: str
    kind: FieldKind
    descending: bool = False
    members: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ODataQuery:
    """A parsed, validated query; apply it with :func:`apply_query`.

    ``stable_key`` is the property used to break ties after ``orderby`` (the
    entity's ``Id``): ASP.NET OData appends the key to the ordering so that
    paging with $skip/$top is deterministic.
    """

    filter: Expr | None = None
    select: tuple[str, ...] | None = None
    orderby: tuple[OrderClause, ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False
    stable_key: OrderClause | None = None
    navigations: frozenset[str] = frozenset()  # navigation properties the query reads


# ---------------------------------------------------------------------- parsing

_KNOWN_OPTIONS = frozenset(
    {"$filter", "$select", "$orderby", "$top", "$skip", "$count", "$expand", "$format"}
)
_OP_NAMES = {
    "eq": "Equal",
    "ne": "NotEqual",
    "lt": "LessThan",
    "gt": "GreaterThan",
    "le": "LessThanOrEqual",
    "ge": "GreaterThanOrEqual",
    "in": "In",
}
_ORDERING_OPS = frozenset({"lt", "gt", "le", "ge"})
_KEYWORDS = frozenset({*_OP_NAMES, "and", "or", "not", "null", "true", "false"})
_UNSUPPORTED_OPERATORS = frozenset({"has", "add", "sub", "mul", "div", "divby", "mod"})
_STRING_PREDICATES: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda text, part: part in text,
    "startswith": str.startswith,
    "endswith": str.endswith,
}
_CASE_FUNCTIONS: dict[str, Callable[[str], str]] = {"tolower": str.lower, "toupper": str.upper}
# Kinds whose ordering the simulator reproduces faithfully. GUIDs are left out:
# SQL Server sorts uniqueidentifier by byte groups, not as text.
_ORDERABLE = frozenset({FieldKind.INT, FieldKind.STRING, FieldKind.DATETIME, FieldKind.BOOL})

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})(?![\w-])
  | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T[\d:.]*(?:Z|[+-]\d{2}:\d{2})?)?)(?![\w-])
  | (?P<number>[+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[A-Za-z]?)(?![\w.])
  | (?P<typed>[A-Za-z_][\w.]*'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE | re.ASCII,  # ASCII: \d must not accept other scripts' digits
)
_INSTANT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDERBY_CLAUSE = re.compile(r"([A-Za-z_][\w/]*)(?:\s+(\w+))?", re.ASCII)


def _parse_instant(text: str) -> int | None:
    """Return nanoseconds since the epoch for an ISO-8601 timestamp with an offset."""
    match = _INSTANT.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC
        )
    except ValueError:
        return None
    offset = 0
    if not zulu:
        if int(off_h) > 23 or int(off_m) > 59:
            return None
        offset = (int(off_h) * 60 + int(off_m)) * 60 * (1 if sign == "+" else -1)
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return (seconds - offset) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36 and text.count("-") == 4


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, string, int, guid, datetime, typed, punct, end
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class _Literal:
    """A literal as written, before it meets a property: ``type`` is an EDM name."""

    type: str
    value: Any
    text: str


@dataclass(frozen=True, slots=True)
class _Entity:
    name: str
    fields: Mapping[str, FieldKind]
    filterable: frozenset[str]
    members: Mapping[str, tuple[str, ...]]
    navigation: Mapping[str, Mapping[str, FieldKind]] = dataclasses.field(default_factory=dict)

    def kind_of(self, prop: str) -> FieldKind:
        if "/" in prop:
            return self._path_kind(prop)
        kind = self.fields.get(prop)
        if kind is None:
            hint = ""
            if prop.lower() in _KEYWORDS:
                hint = f" OData keywords are lower-case: write '{prop.lower()}'."
            raise ODataError(
                f"Could not find a property named '{prop}' on type '{self.name}'.{hint}"
            )
        return kind

    def _path_kind(self, path: str) -> FieldKind:
        """The kind of ``Nav/Prop``, a property of a declared navigation property."""
        nav, _, prop = path.partition("/")
        target = self.navigation.get(nav)
        if target is None:
            if not self.navigation:
                raise ODataError(
                    f"Property paths such as '{path}' are not supported; use the "
                    f"{self.name}'s own properties."
                )
            known = ", ".join(sorted(self.navigation))
            raise ODataError(
                f"Could not find a navigation property named '{nav}' on type '{self.name}'. "
                f"The simulator knows: {known}."
            )
        kind = target.get(prop)
        if kind is None:
            raise ODataError(f"Could not find a property named '{prop}' on type '{nav}'.")
        return kind


def _navigations(props: Iterable[str]) -> frozenset[str]:
    """The navigation properties that ``props`` (some of them paths) read."""
    return frozenset(p.partition("/")[0] for p in props if "/" in p)


class _FilterParser:
    """Recursive descent over the $filter grammar, lowest precedence first.

    filter     := or_expr END
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := term ("and" term)*
    term       := "not" not_operand | "(" or_expr ")" | predicate
    not_operand:= "not" not_operand | "(" or_expr ")" | BoolProperty
    predicate  := Property (cmp_op literal | "in" "(" literal ("," literal)* ")")
                | case_fn "(" Property ")" cmp_op literal
                | str_fn "(" operand "," literal ")" [("eq" | "ne") ("true" | "false")]
                | BoolProperty | "true" | "false"
    operand    := Property | case_fn "(" Property ")"
    str_fn     := "contains" | "startswith" | "endswith";  case_fn := "tolower" | "toupper"

    ``not`` binds tighter than comparisons in OData, so ``not State eq 'X'``
    would negate ``State`` itself; it is refused with a hint to add parentheses.
    """

    def __init__(self, text: str, entity: _Entity) -> None:
        self._text = text
        self._entity = entity
        self._tokens = self._tokenize(text)
        self._index = 0
        self._nodes = 0
        self._depth = 0
        self.props: set[str] = set()  # every property the filter reads

    # tokens ------------------------------------------------------------------

    def _syntax_error(self, pos: int, detail: str) -> ODataError:
        return ODataError(f"Syntax error at position {pos} in '{self._text}': {detail}.")

    def _tokenize(self, text: str) -> list[_Token]:
        tokens: list[_Token] = []
        pos = 0
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                if text[pos] == "'":
                    raise self._syntax_error(pos, "the string literal is not closed")
                raise self._syntax_error(pos, f"unexpected character '{text[pos]}'")
            kind = match.lastgroup
            assert kind is not None
            if kind != "ws":
                tokens.append(_Token("int" if kind == "number" else kind, match.group(), pos))
            pos = match.end()
        tokens.append(_Token("end", "", len(text)))
        return tokens

    def _peek(self) -> _Token:
        return self._tokens[self._index]

    def _next(self) -> _Token:
        token = self._tokens[self._index]
        if token.kind != "end":
            self._index += 1
        return token

    def _at_word(self, word: str) -> bool:
        token = self._peek()
        return token.kind == "name" and token.text == word

    def _expect_punct(self, char: str, what: str) -> None:
        token = self._next()
        if token.kind != "punct" or token.text != char:
            raise self._syntax_error(token.pos, f"expected '{char}' {what}, found {_show(token)}")

    def _count_node(self, n: int = 1) -> None:
        self._nodes += n
        if self._nodes > MAX_FILTER_NODES:
            raise ODataError(
                f"The node count limit of '{MAX_FILTER_NODES}' has been exceeded in $filter. "
                "Split the filter over several requests."
            )

    # grammar -----------------------------------------------------------------

    def parse(self) -> Expr:
        expr = self._or_expr()
        token = self._peek()
        if token.kind != "end":
            detail = f"unexpected {_show(token)}"
            if token.kind == "name" and token.text.lower() in {"and", "or"}:
                detail += f"; logical operators are lower-case: '{token.text.lower()}'"
            raise self._syntax_error(token.pos, detail)
        return expr

    def _or_expr(self) -> Expr:
        left = self._and_expr()
        while self._at_word("or"):
            self._next()
            self._count_node()
            left = Or(left, self._and_expr())
        return left

    def _and_expr(self) -> Expr:
        left = self._term()
        while self._at_word("and"):
            self._next()
            self._count_node()
            left = And(left, self._term())
        return left

    def _parenthesized(self) -> Expr:
        self._expect_punct("(", "to open a group")
        self._depth += 1
        if self._depth > MAX_FILTER_DEPTH:
            raise ODataError(
                f"The recursion limit has been exceeded in $filter: more than "
                f"{MAX_FILTER_DEPTH} nested parentheses."
            )
        expr = self._or_expr()
        self._depth -= 1
        self._expect_punct(")", "to close the group")
        return expr

    def _term(self) -> Expr:
        token = self._peek()
        if token.kind == "name" and token.text == "not":
            self._next()
            self._count_node()
            return Not(self._not_operand())
        if token.kind == "punct" and token.text == "(":
            return self._parenthesized()
        return self._predicate()

    def _not_operand(self) -> Expr:
        token = self._peek()
        if token.kind == "name" and token.text == "not":
            self._next()
            self._count_node()
            return Not(self._not_operand())
        if token.kind == "punct" and token.text == "(":
            return self._parenthesized()
        if token.kind == "name" and token.text in _STRING_PREDICATES:
            return self._predicate()  # not contains(...): a boolean call
        if (
            token.kind == "name"
            and token.text not in _KEYWORDS
            and self._entity.fields.get(token.text) is FieldKind.BOOL
            and not self._operator_follows()
        ):
            return self._predicate()
        raise self._syntax_error(
            token.pos,
            "'not' applies to the single term after it; add parentheses, "
            "e.g. not (State eq 'Faulted')",
        )

    def _operator_follows(self) -> bool:
        following = self._tokens[self._index + 1]
        return following.kind == "name" and following.text.lower() in _OP_NAMES

    def _predicate(self) -> Expr:
        token = self._next()
        if token.kind == "name" and token.text in {"true", "false"}:
            self._count_node()
            return Constant(token.text == "true")
        if token.kind != "name" or token.text in _KEYWORDS:
            raise self._syntax_error(token.pos, f"expected a property name, found {_show(token)}")
        if self._peek().kind == "punct" and self._peek().text == "(":
            return self._function(token)
        prop = token.text
        kind = self._filterable_kind(prop)
        members = self._entity.members.get(prop)
        op_token = self._peek()
        op = op_token.text
        if op_token.kind != "name" or op.lower() not in _OP_NAMES:
            if kind is FieldKind.BOOL:
                self._count_node()
                return BoolProperty(prop)
            detail = f"expected an operator after '{prop}', found {_show(op_token)}"
            if op_token.kind == "name" and op.lower() in _UNSUPPORTED_OPERATORS:
                raise ODataError(f"The operator '{op}' is not supported in $filter.")
            raise self._syntax_error(op_token.pos, detail)
        if op != op.lower():
            raise self._syntax_error(
                op_token.pos, f"operators are lower-case in OData: write '{op.lower()}'"
            )
        self._next()
        if op == "in":
            self._expect_punct("(", "after 'in'")
            # The stock ASP.NET OData validator counts an 'in' node once, whatever
            # its length (orchestrator-api.md §8, FilterQueryValidator.cs): the
            # operator, the property and the list are three nodes.
            values = [self._coerce(self._literal(count=False), prop, kind, op, members)]
            while self._peek().kind == "punct" and self._peek().text == ",":
                self._next()
                values.append(self._coerce(self._literal(count=False), prop, kind, op, members))
            self._expect_punct(")", "to close the 'in' list")
            self._count_node(3)
            return InList(prop, kind, tuple(values), members)
        if op in _ORDERING_OPS:
            _check_orderable(prop, kind, members, f"the '{op}' operator")
        value = self._coerce(self._literal(), prop, kind, op, members)
        self._count_node(2)
        return Comparison(prop, kind, op, value, members)

    def _filterable_kind(self, prop: str) -> FieldKind:
        kind = self._entity.kind_of(prop)
        if prop not in self._entity.filterable:
            raise ODataError(f"The property '{prop}' cannot be used in the $filter query option.")
        self.props.add(prop)
        return kind

    # functions ---------------------------------------------------------------

    def _function(self, name: _Token) -> Expr:
        """A predicate that starts with a function call (the name is consumed)."""
        function = name.text
        if function in _STRING_PREDICATES:
            self._expect_punct("(", f"after '{function}'")
            prop, case = self._string_operand()
            self._expect_punct(",", f"between the arguments of '{function}'")
            literal = self._literal()
            if literal.type != "Edm.String":
                raise ODataError(
                    f"The second argument of '{function}' must be a string literal, "
                    f"found {literal.text}."
                )
            self._expect_punct(")", f"to close '{function}'")
            self._count_node(2)
            call: Expr = StringCall(function, prop, literal.value, case)
            return self._compared_to_boolean(call)
        if function in _CASE_FUNCTIONS:
            self._index -= 1  # the operand parser reads the call itself
            prop, case = self._string_operand()
            op_token = self._next()
            op = op_token.text
            if op_token.kind != "name" or op not in _OP_NAMES or op == "in":
                raise self._syntax_error(
                    op_token.pos,
                    f"expected eq, ne, lt, gt, le or ge after '{function}(...)', "
                    f"found {_show(op_token)}",
                )
            value = self._coerce(self._literal(), prop, FieldKind.STRING, op, None)
            self._count_node(2)
            return Comparison(prop, FieldKind.STRING, op, value, case=case)
        if function == "substringof":
            # Microsoft.OData's answer to a v3 function under OData v4.
            raise ODataError(
                "An unknown function with name 'substringof' was found. This may also be a "
                "function import or a key lookup on a navigation property, which is not "
                "allowed. OData v4 writes it contains(Property,'text')."
            )
        hint = ""
        if function.lower() in {*_STRING_PREDICATES, *_CASE_FUNCTIONS}:
            hint = f" Functions are lower-case: '{function.lower()}'."
        raise ODataError(f"The function '{function}' is not supported in $filter.{hint}")

    def _string_operand(self) -> tuple[str, str | None]:
        """``Property`` or ``tolower(Property)``/``toupper(Property)``, of a string."""
        token = self._next()
        case = None
        if token.kind == "name" and token.text in _CASE_FUNCTIONS:
            case = token.text
            self._expect_punct("(", f"after '{case}'")
            token = self._next()
        if token.kind != "name" or token.text in _KEYWORDS:
            raise self._syntax_error(token.pos, f"expected a property name, found {_show(token)}")
        kind = self._filterable_kind(token.text)
        if kind is not FieldKind.STRING:
            raise ODataError(
                f"The string functions need an Edm.String property; '{token.text}' is {kind.value}."
            )
        if case is not None:
            self._expect_punct(")", f"to close '{case}'")
            self._count_node()
        self._count_node()
        return token.text, case

    def _compared_to_boolean(self, call: Expr) -> Expr:
        """``call eq true``, ``call ne false``... (as older clients write it), or ``call``."""
        following = self._peek()
        if following.kind != "name" or following.text not in {"eq", "ne"}:
            return call
        self._next()
        literal = self._literal()
        if literal.type != "Edm.Boolean":
            raise ODataError(
                f"A string function compares only with true or false, found {literal.text}."
            )
        self._count_node()
        return call if literal.value == (following.text == "eq") else Not(call)

    def _literal(self, *, count: bool = True) -> _Literal:
        token = self._next()
        if count:
            self._count_node()
        text = token.text
        if token.kind == "string":
            return _Literal("Edm.String", text[1:-1].replace("''", "'"), text)
        if token.kind == "guid":
            return _Literal("Edm.Guid", text.lower(), text)
        if token.kind == "int":
            digits = text[:-1] if text[-1] in "Ll" else text
            if not re.fullmatch(r"[+-]?[0-9]+", digits):
                raise self._syntax_error(
                    token.pos, f"'{text}' is not an integer literal (decimals are not supported)"
                )
            return _Literal("Edm.Int64", int(digits), text)
        if token.kind == "datetime":
            if "T" not in text:
                raise self._syntax_error(
                    token.pos,
                    f"date-only literal '{text}' is not supported; write a DateTimeOffset "
                    "such as 2024-04-04T00:00:00Z",
                )
            instant = _parse_instant(text)
            if instant is None:
                raise self._syntax_error(
                    token.pos,
                    f"'{text}' is not a valid DateTimeOffset literal "
                    "(ISO 8601 with an offset, e.g. 2024-04-04T12:00:47.264Z)",
                )
            return _Literal("Edm.DateTimeOffset", instant, text)
        if token.kind == "typed":
            prefix, _, quoted = text.partition("'")
            if "." not in prefix:
                raise self._syntax_error(
                    token.pos,
                    f"typed literal '{text}' is not OData v4 syntax; write the value "
                    "without a type prefix",
                )
            return _Literal("enum", quoted[:-1].replace("''", "'"), text)
        if token.kind == "name" and token.text in {"null", "true", "false"}:
            if token.text == "null":
                return _Literal("null", None, text)
            return _Literal("Edm.Boolean", token.text == "true", text)
        detail = f"expected a literal value, found {_show(token)}"
        if token.kind == "name" and token.text.lower() in {"null", "true", "false"}:
            detail += f"; literals are lower-case: '{token.text.lower()}'"
        raise self._syntax_error(token.pos, detail)

    def _coerce(
        self,
        literal: _Literal,
        prop: str,
        kind: FieldKind,
        op: str,
        members: tuple[str, ...] | None,
    ) -> Value:
        """Turn a literal into the normalised value of ``prop``, or refuse the pair."""
        if literal.type == "null":
            return None
        value = literal.value
        if kind is FieldKind.INT and literal.type == "Edm.Int64":
            return value
        if kind is FieldKind.STRING and literal.type == "Edm.String":
            return value
        if kind is FieldKind.BOOL and literal.type == "Edm.Boolean":
            return value
        if kind is FieldKind.GUID and literal.type in {"Edm.Guid", "Edm.String"}:
            if not _is_guid(value):
                raise ODataError(f"'{value}' is not a valid Guid for the property '{prop}'.")
            return value.lower()
        if kind is FieldKind.DATETIME and literal.type == "Edm.DateTimeOffset":
            return value
        if kind is FieldKind.DATETIME and literal.type == "Edm.String":
            instant = _parse_instant(value)
            if instant is None:
                raise ODataError(
                    f"'{value}' is not a valid DateTimeOffset for the property '{prop}'; "
                    "use ISO 8601 with an offset, e.g. 2024-04-04T12:00:47.264Z."
                )
            return instant
        if kind is FieldKind.ENUM and literal.type in {"enum", "Edm.String"}:
            if members is not None and value not in members:
                raise ODataError(
                    f"The string '{value}' is not a valid enumeration type constant "
                    f"for the property '{prop}'."
                )
            return _enum_value(value, members)
        raise ODataError(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{kind.value}' and '{literal.type}' for operator kind '{_OP_NAMES[op]}' "
            f"(property '{prop}', literal {literal.text})."
        )


def _show(token: _Token) -> str:
    return "the end of the filter" if token.kind == "end" else f"'{token.text}'"


def _enum_value(name: str, members: tuple[str, ...] | None) -> Value:
    if members is None:
        return name
    # Ranks follow declaration order, as the enum's numbers do; unknown names sort last.
    rank = members.index(name) if name in members else len(members)
    return (rank, name)


def _check_orderable(prop: str, kind: FieldKind, members: tuple[str, ...] | None, use: str) -> None:
    if kind in _ORDERABLE or (kind is FieldKind.ENUM and members is not None):
        return
    if kind is FieldKind.ENUM:
        raise ODataError(
            f"The simulator cannot use {use} on the enum property '{prop}': "
            "it does not know the order of its members."
        )
    raise ODataError(f"The simulator does not support {use} on the {kind.value} property '{prop}'.")


def _parse_non_negative(name: str, raw: str) -> int:
    if not re.fullmatch(r"[0-9]{1,10}", raw) or int(raw) > 2**31 - 1:
        raise ODataError(
            f"Invalid value '{raw}' for {name} query option found. "
            f"The {name} query option requires a non-negative integer value."
        )
    return int(raw)


def _parse_select(raw: str, entity: _Entity) -> tuple[str, ...] | None:
    names = [part.strip() for part in raw.split(",")]
    if "*" in names:
        return None
    for name in names:
        if not name:
            raise ODataError(f"Syntax error in $select '{raw}': an empty property name.")
        if "/" in name:
            raise ODataError(
                f"Property paths such as '{name}' are not supported; use the "
                f"{entity.name}'s own properties."
            )
        entity.kind_of(name)
    return tuple(dict.fromkeys(names))


def _parse_orderby(raw: str, entity: _Entity) -> tuple[OrderClause, ...]:
    clauses = [part.strip() for part in raw.split(",")]
    if len(clauses) > MAX_ORDERBY_CLAUSES:
        raise ODataError(
            "The number of clauses in $orderby query option exceeded the maximum number "
            f"allowed. The maximum number of $orderby clauses allowed is {MAX_ORDERBY_CLAUSES}."
        )
    parsed: list[OrderClause] = []
    for clause in clauses:
        match = _ORDERBY_CLAUSE.fullmatch(clause)
        if match is None or (match.group(2) or "asc") not in {"asc", "desc"}:
            raise ODataError(
                f"Syntax error in $orderby clause '{clause}': expected "
                "'<property>', '<property> asc' or '<property> desc'."
            )
        prop = match.group(1)
        kind = entity.kind_of(prop)
        if any(existing.prop == prop for existing in parsed):
            raise ODataError(f"Duplicate property named '{prop}' is not supported in '$orderby'.")
        members = entity.members.get(prop)
        _check_orderable(prop, kind, members, "$orderby")
        parsed.append(OrderClause(prop, kind, match.group(2) == "desc", members))
    return tuple(parsed)


def _parse_count(raw: str) -> bool:
    if raw not in {"true", "false"}:
        raise ODataError(f"'{raw}' is not a valid count option; use $count=true or $count=false.")
    return raw == "true"


def _check_format(raw: str) -> None:
    if raw != "json" and not raw.startswith("application/json"):
        raise ODataError(f"The simulator only returns JSON; '$format={raw}' is not supported.")


def parse_query(
    params: Mapping[str, str],
    *,
    entity: str,
    fields: Mapping[str, FieldKind],
    filterable: Collection[str],
    max_top: int = 1000,
    default_top: int | None = None,
    enum_members: Mapping[str, Sequence[str]] | None = None,
    navigation: Mapping[str, Mapping[str, FieldKind]] | None = None,
) -> ODataQuery:
    """Parse and validate the OData options among ``params``.

    Args:
        params: the request's query parameters; options without ``$`` are ignored.
        entity: the entity type name used in messages, e.g. ``"JobDto"``.
        fields: every property of the entity with its kind ($select and $orderby
            accept all of them).
        filterable: the properties allowed in $filter.
        max_top: the largest $top accepted.
        default_top: the page size when $top is absent (None: no limit).
        enum_members: optional member lists of ENUM properties, in declaration
            order. With them, enum literals are checked and ENUM properties can
            be ordered (by member rank, as the service does).
        navigation: navigation properties (``Robot``) with their properties, for
            paths such as ``Robot/Id`` in $filter (when listed in ``filterable``)
            and $orderby. A row holds a navigation property as a nested dict (or
            null); :attr:`ODataQuery.navigations` names those a query reads.

    Raises:
        ODataError: the query is malformed or uses something unsupported.
    """
    navigation = navigation or {}
    unknown_filterable = {
        name
        for name in filterable
        if name not in fields
        and name.partition("/")[2] not in navigation.get(name.partition("/")[0], {})
    }
    if unknown_filterable:
        raise ValueError(f"filterable names unknown fields: {sorted(unknown_filterable)}")
    info = _Entity(
        name=entity,
        fields=fields,
        filterable=frozenset(filterable),
        members={name: tuple(values) for name, values in (enum_members or {}).items()},
        navigation=navigation,
    )
    for name, raw in params.items():
        if not name.startswith("$"):
            continue
        if name not in _KNOWN_OPTIONS:
            hint = ""
            if name.lower() in _KNOWN_OPTIONS:
                hint = f" Query options are lower-case: '{name.lower()}'."
            raise ODataError(f"The query parameter '{name}' is not supported.{hint}")
        if not raw.strip():
            raise ODataError(f"The value for OData query '{name}' cannot be empty.")

    top = default_top
    if "$top" in params:
        top = _parse_non_negative("$top", params["$top"].strip())
        if top > max_top:
            raise ODataError(
                f"The limit of '{max_top}' for Top query has been exceeded. "
                f"The value from the incoming request is '{top}'."
            )
    if "$format" in params:
        _check_format(params["$format"].strip())
    stable_key = None
    if info.fields.get("Id") is FieldKind.INT:
        stable_key = OrderClause("Id", FieldKind.INT)
    expr, read = None, set[str]()
    if "$filter" in params:
        parser = _FilterParser(params["$filter"], info)
        expr, read = parser.parse(), parser.props
    orderby = _parse_orderby(params["$orderby"], info) if "$orderby" in params else ()
    return ODataQuery(
        filter=expr,
        select=_parse_select(params["$select"], info) if "$select" in params else None,
        orderby=orderby,
        top=top,
        skip=_parse_non_negative("$skip", params["$skip"].strip()) if "$skip" in params else 0,
        count=_parse_count(params["$count"].strip()) if "$count" in params else False,
        stable_key=stable_key,
        navigations=_navigations([*read, *(c.prop for c in orderby)]),
    )


# ------------------------------------------------------------------- evaluation


def _row_value(row: Mapping[str, Any], prop: str, kind: FieldKind, members: Any) -> Value:
    """Normalise a row's value like the literals it is compared with.

    A value of the wrong JSON type is a bug in the rows, not in the query, and
    raises ValueError.
    """
    raw = _lookup(row, prop)
    if raw is None:
        return None
    if kind is FieldKind.INT and isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if kind is FieldKind.BOOL and isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        if kind is FieldKind.STRING:
            return raw
        if kind is FieldKind.GUID:
            return raw.lower()
        if kind is FieldKind.ENUM:
            return _enum_value(raw, members)
        if kind is FieldKind.DATETIME:
            instant = _parse_instant(raw)
            if instant is not None:
                return instant
    raise ValueError(f"row property {prop!r} holds {raw!r}, which is not a valid {kind.value}")


def _lookup(row: Mapping[str, Any], prop: str) -> Any:
    """``row[prop]``, or for a path ``Nav/Prop`` the nested value (null if Nav is)."""
    if "/" not in prop:
        return row.get(prop)
    nav, _, inner = prop.partition("/")
    nested = row.get(nav)
    return nested.get(inner) if isinstance(nested, Mapping) else None


def _cased(value: Value, case: str | None) -> Value:
    return value if case is None or value is None else _CASE_FUNCTIONS[case](value)


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "lt": operator.lt,
    "gt": operator.gt,
    "le": operator.le,
    "ge": operator.ge,
}


def _matches(expr: Expr, row: Mapping[str, Any]) -> bool:
    if isinstance(expr, Comparison):
        value = _cased(_row_value(row, expr.prop, expr.kind, expr.members), expr.case)
        if expr.op == "eq":
            return bool(value == expr.value)
        if expr.op == "ne":
            return bool(value != expr.value)
        # OData: an ordering comparison with a null operand is false.
        if value is None or expr.value is None:
            return False
        return bool(_COMPARE[expr.op](value, expr.value))
    if isinstance(expr, InList):
        return _row_value(row, expr.prop, expr.kind, expr.members) in expr.values
    if isinstance(expr, StringCall):
        text = _cased(_row_value(row, expr.prop, FieldKind.STRING, None), expr.case)
        # A null operand makes the call null, which a filter treats as false.
        return text is not None and _STRING_PREDICATES[expr.function](text, expr.value)
    if isinstance(expr, BoolProperty):
        return row.get(expr.prop) is True
    if isinstance(expr, Constant):
        return expr.value
    if isinstance(expr, Not):
        return not _matches(expr.operand, row)
    if isinstance(expr, And):
        return _matches(expr.left, row) and _matches(expr.right, row)
    return _matches(expr.left, row) or _matches(expr.right, row)


def required_values(expr: Expr | None, prop: str) -> frozenset[Value] | None:
    """The values ``prop`` must take for a row to match ``expr``; None: any value.

    Read from ``prop eq v`` and ``prop in (...)``, through ``and`` (both sides
    must hold) and ``or`` (either side, when both constrain ``prop``). Lets a
    list pick its candidate rows by key before building them; the filter itself
    is still applied to those rows.
    """
    if isinstance(expr, Comparison):
        exact = expr.prop == prop and expr.op == "eq" and expr.case is None
        return frozenset({expr.value}) if exact else None
    if isinstance(expr, InList):
        return frozenset(expr.values) if expr.prop == prop else None
    if isinstance(expr, And):
        left, right = required_values(expr.left, prop), required_values(expr.right, prop)
        if left is None or right is None:
            return right if left is None else left
        return left & right
    if isinstance(expr, Or):
        left, right = required_values(expr.left, prop), required_values(expr.right, prop)
        return None if left is None or right is None else left | right
    return None


def _sort_key(clause: OrderClause) -> Callable[[Mapping[str, Any]], tuple[int, Any]]:
    def key(row: Mapping[str, Any]) -> tuple[int, Any]:
        value = _row_value(row, clause.prop, clause.kind, clause.members)
        # Nulls sort before any value, as in SQL Server and LINQ.
        return (0, 0) if value is None else (1, value)

    return key


def apply_query(
    query: ODataQuery, rows: Iterable[Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], int | None]:
    """Filter, order, count, page and project ``rows``.

    Returns:
        ``(page, count)``: the selected rows as new dicts, and the number of rows
        that passed the filter when $count=true (None otherwise).
    """
    selected = [row for row in rows if query.filter is None or _matches(query.filter, row)]
    clauses = list(query.orderby)
    if query.stable_key is not None and all(c.prop != query.stable_key.prop for c in clauses):
        clauses.append(query.stable_key)
    # Stable sorts from the last clause to the first give a multi-key ordering.
    for clause in reversed(clauses):
        selected.sort(key=_sort_key(clause), reverse=clause.descending)
    count = len(selected) if query.count else None
    end = None if query.top is None else query.skip + query.top
    page = selected[query.skip : end]
    if query.select is None:
        return [dict(row) for row in page], count
    wanted = query.select
    return [{name: value for name, value in row.items() if name in wanted} for row in page], count
