"""The simulator's OData subset: parsing, evaluation and every refusal."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from async_orch.simulator.odata import (
    FieldKind,
    ODataError,
    ODataQuery,
    apply_query,
    parse_query,
    required_values,
)

F = FieldKind
FIELDS: dict[str, FieldKind] = {
    "Id": F.INT,
    "Key": F.GUID,
    "State": F.ENUM,
    "CreationTime": F.DATETIME,
    "StartTime": F.DATETIME,
    "Reference": F.STRING,
    "ReleaseName": F.STRING,
    "HasErrors": F.BOOL,
    "InputArguments": F.STRING,
}
FILTERABLE = [name for name in FIELDS if name != "InputArguments"]
JOB_STATES = (
    "Pending",
    "Running",
    "Stopping",
    "Terminating",
    "Faulted",
    "Successful",
    "Stopped",
    "Suspended",
    "Resumed",
)

KEY_1 = "b618cdfd-8714-4dbf-9a00-0586a8953c90"
KEY_2 = "abbbb5de-d46a-4b9b-8f73-8a3247be0a0e"


def job(
    id: int,
    state: str = "Pending",
    created: str = "2024-04-04T12:00:00Z",
    *,
    key: str | None = None,
    started: str | None = None,
    reference: str | None = None,
    has_errors: bool = False,
) -> dict[str, Any]:
    return {
        "Id": id,
        "Key": key or f"00000000-0000-0000-0000-{id:012d}",
        "State": state,
        "CreationTime": created,
        "StartTime": started,
        "Reference": reference,
        "ReleaseName": "Invoices",
        "HasErrors": has_errors,
        "InputArguments": None,
    }


ROWS = [
    job(1, "Successful", "2024-04-04T12:00:47.264Z", key=KEY_1, reference="batch-1"),
    job(2, "Faulted", "2024-04-04T12:00:47.2640001Z", reference="it's"),
    job(3, "Running", "2024-04-04T12:00:47.26Z", started="2024-04-04T12:01:00Z"),
    job(4, "Pending", "2024-04-04T14:00:47.264+02:00", key=KEY_2.upper(), has_errors=True),
    job(5, "Stopped", "2024-04-05T00:00:00.1234567Z", reference="batch-1"),
]


def parse(params: Mapping[str, str], **kwargs: Any) -> ODataQuery:
    options: dict[str, Any] = {"entity": "JobDto", "fields": FIELDS, "filterable": FILTERABLE}
    options.update(kwargs)
    return parse_query(params, **options)


def run(params: Mapping[str, str], rows: list[dict[str, Any]] = ROWS, **kwargs: Any) -> Any:
    page, count = apply_query(parse(params, **kwargs), rows)
    return page, count


def ids(filter_text: str, **kwargs: Any) -> list[int]:
    page, _ = run({"$filter": filter_text}, **kwargs)
    return [row["Id"] for row in page]


def error_of(params: Mapping[str, str], **kwargs: Any) -> str:
    with pytest.raises(ODataError) as caught:
        parse(params, **kwargs)
    assert str(caught.value) == caught.value.message
    return caught.value.message


# ----------------------------------------------------------------- comparisons


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("Id eq 3", [3]),
        ("Id ne 3", [1, 2, 4, 5]),
        ("Id lt 3", [1, 2]),
        ("Id le 3", [1, 2, 3]),
        ("Id gt 3", [4, 5]),
        ("Id ge 3", [3, 4, 5]),
        ("Id eq 3L", [3]),
        ("Id eq 3l", [3]),
        ("Id gt -1", [1, 2, 3, 4, 5]),
        ("Id in (1,3, 5)", [1, 3, 5]),
        ("Id in (2L)", [2]),
        ("Id in (7, 8)", []),
    ],
)
def test_integer_comparisons(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("Reference eq 'batch-1'", [1, 5]),
        ("Reference eq 'it''s'", [2]),
        ("Reference in ('it''s', 'batch-1')", [1, 2, 5]),
        ("Reference eq 'BATCH-1'", []),
        ("Reference gt 'c'", [2]),
        ("ReleaseName eq ''", []),
    ],
)
def test_string_comparisons(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        (f"Key eq {KEY_1}", [1]),
        (f"Key eq '{KEY_1}'", [1]),
        (f"Key eq {KEY_1.upper()}", [1]),
        # Row 4 stores its key in upper case; GUIDs compare case-insensitively.
        (f"Key eq '{KEY_2}'", [4]),
        (f"Key in ('{KEY_1}', {KEY_2})", [1, 4]),
        (f"Key ne {KEY_1}", [2, 3, 4, 5]),
    ],
)
def test_guid_comparisons(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        # Same instant written with 3 and 7 fractional digits, and with an offset.
        ("CreationTime eq 2024-04-04T12:00:47.264Z", [1, 4]),
        ("CreationTime eq 2024-04-04T12:00:47.2640000Z", [1, 4]),
        ("CreationTime eq '2024-04-04T12:00:47.264Z'", [1, 4]),
        ("CreationTime eq 2024-04-04T14:00:47.264+02:00", [1, 4]),
        # .2640001 is after .264, which a string comparison of "...47.2640001Z"
        # and "...47.264Z" would also get right, but .26 < .264 it would not.
        ("CreationTime gt 2024-04-04T12:00:47.264Z", [2, 5]),
        ("CreationTime lt 2024-04-04T12:00:47.264Z", [3]),
        ("CreationTime ge 2024-04-04T12:00:47.264Z", [1, 2, 4, 5]),
        ("CreationTime le 2024-04-04T12:00:47.26Z", [3]),
        ("CreationTime ge 2024-04-05T00:00:00.1234567Z", [5]),
        ("CreationTime gt 2024-04-05T00:00:00.123456Z", [5]),
        ("CreationTime gt 2024-04-05T00:00:00.1234568Z", []),
        ("CreationTime lt 2024-04-04T12:00Z", []),
    ],
)
def test_datetimes_compare_as_instants(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("State eq 'Faulted'", [2]),
        ("State ne 'Faulted'", [1, 3, 4, 5]),
        ("State in ('Pending','Running')", [3, 4]),
        ("State eq UiPath.Core.Enums.JobState'Faulted'", [2]),
        ("State in (UiPath.Core.Enums.JobState'Stopped', 'Running')", [3, 5]),
    ],
)
def test_enum_comparisons_are_by_name(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected
    assert ids(filter_text, enum_members={"State": JOB_STATES}) == expected


def test_enum_ordering_follows_member_order_when_known() -> None:
    # Declaration order: Pending < Running < ... < Faulted < Successful < Stopped.
    assert ids("State gt 'Faulted'", enum_members={"State": JOB_STATES}) == [1, 5]
    assert ids("State le 'Running'", enum_members={"State": JOB_STATES}) == [3, 4]


def test_boolean_property_and_literals() -> None:
    assert ids("HasErrors") == [4]
    assert ids("HasErrors eq true") == [4]
    assert ids("HasErrors eq false") == [1, 2, 3, 5]
    assert ids("not HasErrors") == [1, 2, 3, 5]
    assert ids("HasErrors and Id gt 3") == [4]
    assert ids("true") == [1, 2, 3, 4, 5]
    assert ids("false or Id eq 1") == [1]


# ------------------------------------------------------------------------ null


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("StartTime eq null", [1, 2, 4, 5]),
        ("StartTime ne null", [3]),
        ("Reference eq null", [3, 4]),
        ("Reference in ('it''s', null)", [2, 3, 4]),
        # Ordering comparisons with a null operand are false, whatever the side.
        ("StartTime lt 2030-01-01T00:00:00Z", [3]),
        ("StartTime gt 2000-01-01T00:00:00Z", [3]),
        ("Id gt null", []),
        ("Id le null", []),
        # ... and 'not' turns that false into true, as C#/LINQ lifted operators do.
        ("not (StartTime lt 2030-01-01T00:00:00Z)", [1, 2, 4, 5]),
    ],
)
def test_null_semantics(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


def test_missing_row_property_is_null() -> None:
    rows: list[dict[str, Any]] = [{"Id": 1}, {"Id": 2, "Reference": "x"}]
    assert [r["Id"] for r in run({"$filter": "Reference eq null"}, rows)[0]] == [1]


# -------------------------------------------------------- logic and precedence


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("Id eq 1 or Id eq 2 and State eq 'Running'", [1]),
        ("(Id eq 1 or Id eq 2) and State eq 'Faulted'", [2]),
        ("Id eq 3 and State eq 'Running' or Id eq 5", [3, 5]),
        ("Id eq 5 or Id eq 3 and State eq 'Faulted'", [5]),
        ("not (Id eq 1) and not (Id eq 2)", [3, 4, 5]),
        ("not (Id eq 1 or Id eq 2)", [3, 4, 5]),
        ("not not (Id eq 1)", [1]),
        ("not (not (Id le 2) and Id lt 5)", [1, 2, 5]),
        ("((((Id eq 4))))", [4]),
        ("  Id   eq\t4  ", [4]),
        ("Id eq 1 and Id eq 2 or Id ge 4 and Reference eq 'batch-1'", [5]),
    ],
)
def test_and_binds_tighter_than_or(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


def test_a_hundred_nodes_are_allowed() -> None:
    # 'Id in (...)' with 98 values: operator + property + 98 values = 100 nodes.
    values = ",".join(str(n) for n in range(1, 99))
    assert ids(f"Id in ({values})") == [1, 2, 3, 4, 5]


# ------------------------------------------------------ select, paging, order


def test_select_projects_in_row_order_and_ignores_duplicates() -> None:
    page, _ = run({"$select": "State, Id,State", "$filter": "Id eq 2"})
    assert page == [{"Id": 2, "State": "Faulted"}]
    assert list(page[0]) == ["Id", "State"]


def test_select_star_keeps_everything_and_rows_are_copies() -> None:
    page, _ = run({"$select": "*", "$filter": "Id eq 1"})
    assert page == [ROWS[0]]
    page[0]["State"] = "changed"
    assert ROWS[0]["State"] == "Successful"


def test_top_skip_and_count() -> None:
    page, count = run({"$filter": "Id gt 1", "$skip": "1", "$top": "2", "$count": "true"})
    assert [row["Id"] for row in page] == [3, 4]
    assert count == 4  # counted after the filter, before paging


def test_count_false_and_absent() -> None:
    assert run({"$count": "false"})[1] is None
    assert run({})[1] is None


def test_top_zero_and_skip_past_the_end() -> None:
    assert run({"$top": "0", "$count": "true"}) == ([], 5)
    assert run({"$skip": "10"}) == ([], None)


def test_default_top_applies_only_without_top() -> None:
    assert len(run({}, default_top=2)[0]) == 2
    assert len(run({"$top": "4"}, default_top=2)[0]) == 4
    assert len(run({})[0]) == 5


def test_top_at_the_limit_is_allowed() -> None:
    assert parse({"$top": "1000"}).top == 1000
    assert parse({"$top": "10"}, max_top=10).top == 10


def test_orderby_multi_key_with_directions() -> None:
    rows = [
        job(1, "Faulted", reference="b"),
        job(2, "Running", reference="a"),
        job(3, "Faulted", reference="a"),
        job(4, "Running", reference="b"),
    ]
    page, _ = run({"$orderby": "Reference desc, Id desc"}, rows)
    assert [row["Id"] for row in page] == [4, 1, 3, 2]
    page, _ = run({"$orderby": "Reference,Id desc"}, rows)
    assert [row["Id"] for row in page] == [3, 2, 4, 1]


def test_orderby_datetime_by_instant() -> None:
    page, _ = run({"$orderby": "CreationTime desc"})
    # 5 (Apr 5) > 2 (.2640001) > 1 and 4 (same instant, tie broken by Id) > 3 (.26)
    assert [row["Id"] for row in page] == [5, 2, 1, 4, 3]


def test_orderby_puts_nulls_first_ascending_and_last_descending() -> None:
    assert [r["Id"] for r in run({"$orderby": "Reference"})[0]] == [3, 4, 1, 5, 2]
    assert [r["Id"] for r in run({"$orderby": "Reference desc"})[0]] == [2, 1, 5, 3, 4]


def test_orderby_enum_by_member_rank() -> None:
    page, _ = run({"$orderby": "State"}, enum_members={"State": JOB_STATES})
    assert [row["State"] for row in page] == [
        "Pending",
        "Running",
        "Faulted",
        "Successful",
        "Stopped",
    ]


def test_orderby_boolean() -> None:
    assert [r["Id"] for r in run({"$orderby": "HasErrors desc"})[0]] == [4, 1, 2, 3, 5]


def test_without_orderby_rows_come_in_id_order() -> None:
    # ASP.NET OData orders by the key to make paging stable.
    shuffled = [ROWS[3], ROWS[0], ROWS[4], ROWS[2], ROWS[1]]
    assert [r["Id"] for r in run({"$top": "3"}, shuffled)[0]] == [1, 2, 3]


def test_order_of_operations_filter_order_count_skip_top_select() -> None:
    page, count = run(
        {
            "$filter": "Id ne 3",
            "$orderby": "CreationTime desc",
            "$count": "true",
            "$skip": "1",
            "$top": "2",
            "$select": "Id",
        }
    )
    assert page == [{"Id": 2}, {"Id": 1}]
    assert count == 4


def test_expand_and_format_json_are_accepted_and_ignored() -> None:
    query = parse({"$expand": "Robot,Release", "$format": "json", "$filter": "Id eq 1"})
    assert apply_query(query, ROWS)[0] == [ROWS[0]]
    parse({"$format": "application/json;odata.metadata=minimal"})


def test_options_without_dollar_are_left_to_the_endpoint() -> None:
    assert parse({"mandatoryPermissions": "Jobs.View"}) == parse({})


def test_parse_once_apply_many_times() -> None:
    query = parse({"$filter": "State eq 'Pending'"})
    assert [r["Id"] for r in apply_query(query, ROWS)[0]] == [4]
    assert apply_query(query, [job(9)])[0] == [job(9)]
    assert apply_query(query, iter([job(8, "Running")])) == ([], None)


# --------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$filter": "Foo eq 1"}, "Could not find a property named 'Foo' on type 'JobDto'."),
        ({"$select": "Id,Foo"}, "Could not find a property named 'Foo' on type 'JobDto'."),
        ({"$orderby": "Foo desc"}, "Could not find a property named 'Foo' on type 'JobDto'."),
        (
            {"$filter": "InputArguments eq null"},
            "The property 'InputArguments' cannot be used in the $filter query option.",
        ),
        (
            {"$top": "5000"},
            "The limit of '1000' for Top query has been exceeded. "
            "The value from the incoming request is '5000'.",
        ),
        (
            {"$top": "-1"},
            "Invalid value '-1' for $top query option found. "
            "The $top query option requires a non-negative integer value.",
        ),
        (
            {"$top": "ten"},
            "Invalid value 'ten' for $top query option found. "
            "The $top query option requires a non-negative integer value.",
        ),
        (
            {"$top": "\u0663"},  # ARABIC-INDIC DIGIT THREE: int() would accept it
            "Invalid value '\u0663' for $top query option found. "
            "The $top query option requires a non-negative integer value.",
        ),
        (
            {"$skip": "1.5"},
            "Invalid value '1.5' for $skip query option found. "
            "The $skip query option requires a non-negative integer value.",
        ),
        (
            {"$skip": "99999999999"},
            "Invalid value '99999999999' for $skip query option found. "
            "The $skip query option requires a non-negative integer value.",
        ),
        ({"$count": "yes"}, "'yes' is not a valid count option; use $count=true or $count=false."),
        (
            {"$orderby": "Id,State,Key,Reference,CreationTime,StartTime"},
            "The number of clauses in $orderby query option exceeded the maximum number "
            "allowed. The maximum number of $orderby clauses allowed is 5.",
        ),
        (
            {"$orderby": "Id down"},
            "Syntax error in $orderby clause 'Id down': expected '<property>', "
            "'<property> asc' or '<property> desc'.",
        ),
        (
            {"$orderby": "Id,"},
            "Syntax error in $orderby clause '': expected '<property>', "
            "'<property> asc' or '<property> desc'.",
        ),
        (
            {"$orderby": "Id,Id desc"},
            "Duplicate property named 'Id' is not supported in '$orderby'.",
        ),
        (
            {"$orderby": "State"},
            "The simulator cannot use $orderby on the enum property 'State': "
            "it does not know the order of its members.",
        ),
        (
            {"$orderby": "Key"},
            "The simulator does not support $orderby on the Edm.Guid property 'Key'.",
        ),
        ({"$select": "Id,,State"}, "Syntax error in $select 'Id,,State': an empty property name."),
        (
            {"$select": "Robot/Name"},
            "Property paths such as 'Robot/Name' are not supported; use the JobDto's own "
            "properties.",
        ),
        ({"$search": "x"}, "The query parameter '$search' is not supported."),
        ({"$apply": "groupby((State))"}, "The query parameter '$apply' is not supported."),
        (
            {"$Filter": "Id eq 1"},
            "The query parameter '$Filter' is not supported. "
            "Query options are lower-case: '$filter'.",
        ),
        ({"$filter": "  "}, "The value for OData query '$filter' cannot be empty."),
        ({"$top": ""}, "The value for OData query '$top' cannot be empty."),
        (
            {"$format": "atom"},
            "The simulator only returns JSON; '$format=atom' is not supported.",
        ),
    ],
)
def test_option_errors(params: dict[str, str], message: str) -> None:
    assert error_of(params) == message


@pytest.mark.parametrize(
    ("filter_text", "message"),
    [
        (
            "Id eq",
            "Syntax error at position 5 in 'Id eq': expected a literal value, "
            "found the end of the filter.",
        ),
        (
            "Id eq 5 or",
            "Syntax error at position 10 in 'Id eq 5 or': expected a property name, "
            "found the end of the filter.",
        ),
        (
            "(Id eq 5",
            "Syntax error at position 8 in '(Id eq 5': expected ')' to close the group, "
            "found the end of the filter.",
        ),
        (
            "Id eq 5)",
            "Syntax error at position 7 in 'Id eq 5)': unexpected ')'.",
        ),
        (
            "Id eq 5 Id eq 6",
            "Syntax error at position 8 in 'Id eq 5 Id eq 6': unexpected 'Id'.",
        ),
        (
            "Id 5",
            "Syntax error at position 3 in 'Id 5': expected an operator after 'Id', found '5'.",
        ),
        (
            "5 eq Id",
            "Syntax error at position 0 in '5 eq Id': expected a property name, found '5'.",
        ),
        (
            "Id EQ 5",
            "Syntax error at position 3 in 'Id EQ 5': operators are lower-case in OData: "
            "write 'eq'.",
        ),
        (
            "Id eq 5 AND Id eq 6",
            "Syntax error at position 8 in 'Id eq 5 AND Id eq 6': unexpected 'AND'; "
            "logical operators are lower-case: 'and'.",
        ),
        (
            "NOT (Id eq 5)",
            "The function 'NOT' is not supported in $filter.",
        ),
        (
            "NOT Id eq 5",
            "Could not find a property named 'NOT' on type 'JobDto'. "
            "OData keywords are lower-case: write 'not'.",
        ),
        (
            "State eq NULL",
            "Syntax error at position 9 in 'State eq NULL': expected a literal value, "
            "found 'NULL'; literals are lower-case: 'null'.",
        ),
        (
            "not State eq 'Faulted'",
            "Syntax error at position 4 in 'not State eq 'Faulted'': 'not' applies to the "
            "single term after it; add parentheses, e.g. not (State eq 'Faulted').",
        ),
        (
            "not HasErrors eq true",
            "Syntax error at position 4 in 'not HasErrors eq true': 'not' applies to the "
            "single term after it; add parentheses, e.g. not (State eq 'Faulted').",
        ),
        (
            "Reference eq 'abc",
            "Syntax error at position 13 in 'Reference eq 'abc': the string literal is not closed.",
        ),
        (
            "Id eq 5 % 2",
            "Syntax error at position 8 in 'Id eq 5 % 2': unexpected character '%'.",
        ),
        (
            "Id eq 1.5",
            "Syntax error at position 6 in 'Id eq 1.5': '1.5' is not an integer literal "
            "(decimals are not supported).",
        ),
        (
            "Id eq 5x",
            "Syntax error at position 6 in 'Id eq 5x': '5x' is not an integer literal "
            "(decimals are not supported).",
        ),
        (
            "Id in ()",
            "Syntax error at position 7 in 'Id in ()': expected a literal value, found ')'.",
        ),
        (
            "Id in 1,2",
            "Syntax error at position 6 in 'Id in 1,2': expected '(' after 'in', found '1'.",
        ),
        (
            "Id in (1,2",
            "Syntax error at position 10 in 'Id in (1,2': expected ')' to close the 'in' "
            "list, found the end of the filter.",
        ),
        (
            "Id eq '5'",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.Int64' and 'Edm.String' for operator kind 'Equal' (property 'Id', "
            "literal '5').",
        ),
        (
            "Reference in ('a', 5)",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.String' and 'Edm.Int64' for operator kind 'In' (property 'Reference', "
            "literal 5).",
        ),
        (
            "HasErrors eq 1",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.Boolean' and 'Edm.Int64' for operator kind 'Equal' (property 'HasErrors', "
            "literal 1).",
        ),
        (
            f"Reference eq {KEY_1}",
            "A binary operator with incompatible types was detected. Found operand types "
            "'Edm.String' and 'Edm.Guid' for operator kind 'Equal' (property 'Reference', "
            f"literal {KEY_1}).",
        ),
        ("Key eq 'not-a-guid'", "'not-a-guid' is not a valid Guid for the property 'Key'."),
        (
            "CreationTime ge 2024-04-04",
            "Syntax error at position 16 in 'CreationTime ge 2024-04-04': date-only literal "
            "'2024-04-04' is not supported; write a DateTimeOffset such as "
            "2024-04-04T00:00:00Z.",
        ),
        (
            "CreationTime ge 2024-04-04T12:00:00",
            "Syntax error at position 16 in 'CreationTime ge 2024-04-04T12:00:00': "
            "'2024-04-04T12:00:00' is not a valid DateTimeOffset literal (ISO 8601 with "
            "an offset, e.g. 2024-04-04T12:00:47.264Z).",
        ),
        (
            "CreationTime ge 2024-02-30T12:00:00Z",
            "Syntax error at position 16 in 'CreationTime ge 2024-02-30T12:00:00Z': "
            "'2024-02-30T12:00:00Z' is not a valid DateTimeOffset literal (ISO 8601 with "
            "an offset, e.g. 2024-04-04T12:00:47.264Z).",
        ),
        (
            "CreationTime ge 2024-04-04T12:00:00+24:00",
            "Syntax error at position 16 in 'CreationTime ge 2024-04-04T12:00:00+24:00': "
            "'2024-04-04T12:00:00+24:00' is not a valid DateTimeOffset literal (ISO 8601 with "
            "an offset, e.g. 2024-04-04T12:00:47.264Z).",
        ),
        (
            "CreationTime ge 'yesterday'",
            "'yesterday' is not a valid DateTimeOffset for the property 'CreationTime'; "
            "use ISO 8601 with an offset, e.g. 2024-04-04T12:00:47.264Z.",
        ),
        (
            f"Key eq guid'{KEY_1}'",
            f"Syntax error at position 7 in 'Key eq guid'{KEY_1}'': typed literal "
            f"'guid'{KEY_1}'' is not OData v4 syntax; write the value without a type prefix.",
        ),
        (
            "Robot/Id eq 5L",
            "Property paths such as 'Robot/Id' are not supported; use the JobDto's own properties.",
        ),
        ("length(Reference) eq 1", "The function 'length' is not supported in $filter."),
        (
            "Contains(Reference,'x')",
            "The function 'Contains' is not supported in $filter. Functions are lower-case: "
            "'contains'.",
        ),
        (
            "substringof('x',Reference)",
            "An unknown function with name 'substringof' was found. This may also be a "
            "function import or a key lookup on a navigation property, which is not allowed. "
            "OData v4 writes it contains(Property,'text').",
        ),
        (
            "contains(Id,'1')",
            "The string functions need an Edm.String property; 'Id' is Edm.Int64.",
        ),
        (
            "contains(Reference,1)",
            "The second argument of 'contains' must be a string literal, found 1.",
        ),
        (
            "contains(Reference,'x') eq 1",
            "A string function compares only with true or false, found 1.",
        ),
        (
            "tolower(Reference) in ('a')",
            "Syntax error at position 19 in 'tolower(Reference) in ('a')': expected eq, ne, "
            "lt, gt, le or ge after 'tolower(...)', found 'in'.",
        ),
        (
            "contains(InputArguments,'x')",
            "The property 'InputArguments' cannot be used in the $filter query option.",
        ),
        ("Id add 1 eq 2", "The operator 'add' is not supported in $filter."),
        (
            "Key gt 'b618cdfd-8714-4dbf-9a00-0586a8953c90'",
            "The simulator does not support the 'gt' operator on the Edm.Guid property 'Key'.",
        ),
        (
            "State lt 'Running'",
            "The simulator cannot use the 'lt' operator on the enum property 'State': "
            "it does not know the order of its members.",
        ),
    ],
)
def test_filter_errors(filter_text: str, message: str) -> None:
    assert error_of({"$filter": filter_text}) == message


def test_unknown_enum_member_is_refused_when_members_are_known() -> None:
    message = error_of({"$filter": "State eq 'Done'"}, enum_members={"State": JOB_STATES})
    assert message == (
        "The string 'Done' is not a valid enumeration type constant for the property 'State'."
    )


def test_more_than_a_hundred_nodes_are_refused() -> None:
    chain = " or ".join(f"Id eq {n}" for n in range(1, 27))  # 26 * 3 + 25 = 103 nodes
    assert error_of({"$filter": chain}) == (
        "The node count limit of '100' has been exceeded in $filter. Split the filter over "
        "several requests."
    )
    lists = " or ".join(f"Id in ({n})" for n in range(1, 27))  # 26 * 3 + 25 = 103 nodes
    assert "node count limit" in error_of({"$filter": lists})


def test_an_in_list_counts_once_toward_the_node_limit() -> None:
    # The stock ASP.NET OData validator counts an 'in' node once (orchestrator-api.md §8).
    values = ",".join(str(n) for n in range(1, 2001))
    assert ids(f"Id in ({values})") == [1, 2, 3, 4, 5]
    # 24 comparisons (72) + 1 list (3) + 24 'or' = 99 nodes, whatever the list's length.
    chain = " or ".join(f"Id eq {n}" for n in range(100, 124))
    assert ids(f"{chain} or Id in ({values})") == [1, 2, 3, 4, 5]


def test_filterable_must_name_known_fields() -> None:
    with pytest.raises(ValueError, match="Robot"):
        parse({}, filterable=["Id", "Robot"])


def test_a_row_of_the_wrong_type_is_a_loud_bug() -> None:
    query = parse({"$filter": "Id eq 1"})
    with pytest.raises(ValueError, match="row property 'Id' holds '1'"):
        apply_query(query, [{"Id": "1"}])
    query = parse({"$orderby": "CreationTime"})
    with pytest.raises(ValueError, match=r"not a valid Edm\.DateTimeOffset"):
        apply_query(query, [job(1, created="2024-04-04 12:00")])


@pytest.mark.parametrize(
    "garbage",
    [
        "'",
        "''",
        "(",
        ")",
        ",",
        "eq",
        "and",
        "not",
        "()",
        "Id eq eq 5",
        "Id in (1,)",
        "@",
        "Id eq 5 ;",
        "Id eq \u0663",
    ],
)
def test_garbage_is_always_an_odata_error(garbage: str) -> None:
    error_of({"$filter": garbage})


# ----------------------------------------------------------------- required values


@pytest.mark.parametrize(
    ("filter_text", "required"),
    [
        ("Id eq 3", {3}),
        ("Id in (1, 4)", {1, 4}),
        ("Id in (1, 4) and State eq 'Running'", {1, 4}),
        ("State eq 'Running' and Id in (1, 4)", {1, 4}),
        ("Id in (1, 2, 4) and Id in (2, 4, 5)", {2, 4}),
        ("Id eq 1 or Id in (2, 3)", {1, 2, 3}),
        ("Id eq 1 or State eq 'Running'", None),
        ("Id ne 3", None),
        ("Id gt 3", None),
        ("not (Id eq 3)", None),
        ("Reference eq 'batch-1'", None),
    ],
)
def test_required_values_reads_the_ids_a_filter_can_match(
    filter_text: str, required: set[int] | None
) -> None:
    found = required_values(parse({"$filter": filter_text}).filter, "Id")
    assert found == (None if required is None else frozenset(required))
    if found is not None:
        # Picking rows by those ids first changes nothing.
        assert ids(filter_text) == ids(filter_text, rows=[r for r in ROWS if r["Id"] in found])


def test_required_values_of_no_filter_is_none() -> None:
    assert required_values(None, "Id") is None


# ------------------------------------------- functions and navigation (issue 14)


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("contains(Reference,'atch')", [1, 5]),
        ("contains(Reference,'ATCH')", []),  # case-sensitive, as OData specifies
        ("contains(tolower(Reference),'atch')", [1, 5]),
        ("contains(toupper(Reference),'ATCH')", [1, 5]),
        ("startswith(Reference,'it')", [2]),
        ("endswith(Reference,'-1')", [1, 5]),
        ("endswith(Reference,'''s')", [2]),  # '' escapes a quote
        ("contains(Reference,'atch') eq true", [1, 5]),
        ("contains(Reference,'atch') eq false", [2, 3, 4]),  # null Reference: not a match
        ("contains(Reference,'atch') ne true", [2, 3, 4]),
        ("not contains(Reference,'atch')", [2, 3, 4]),
        ("not endswith(ReleaseName,'voices')", []),
        ("tolower(ReleaseName) eq 'invoices'", [1, 2, 3, 4, 5]),
        ("toupper(ReleaseName) eq 'Invoices'", []),
        ("tolower(Reference) ge 'c'", [2]),
        ("startswith(Reference,'batch') and Id gt 1", [5]),
    ],
)
def test_string_functions(filter_text: str, expected: list[int]) -> None:
    assert ids(filter_text) == expected


NAVIGATION = {
    "Robot": {"Id": F.INT, "Name": F.STRING},
    "Release": {"Name": F.STRING, "Key": F.GUID},
    "Machine": {"Name": F.STRING},
}
NAV_FILTERABLE = [*FILTERABLE, "Robot/Id", "Robot/Name", "Release/Name", "Machine/Name"]


def nav_rows() -> list[dict[str, Any]]:
    rows = []
    for row in ROWS:
        robot = None if row["Id"] == 4 else {"Id": 10 + row["Id"] % 2, "Name": f"r{row['Id']}"}
        release = {"Name": "Invoices" if row["Id"] < 3 else "Payroll", "Key": KEY_1}
        machine = None if robot is None else {"Name": "M-A" if row["Id"] % 2 else "M-B"}
        rows.append({**row, "Robot": robot, "Release": release, "Machine": machine})
    return rows


def nav_ids(params: Mapping[str, str]) -> list[int]:
    query = parse(params, filterable=NAV_FILTERABLE, navigation=NAVIGATION)
    page, _ = apply_query(query, nav_rows())
    return [row["Id"] for row in page]


@pytest.mark.parametrize(
    ("filter_text", "expected"),
    [
        ("Robot/Id eq 11L", [1, 3, 5]),
        ("(Robot/Id eq 10)", [2]),
        ("Robot/Id eq null", [4]),  # no robot yet: the path is null
        ("Release/Name eq 'Payroll'", [3, 4, 5]),
        ("contains(Release/Name,'roll') and Machine/Name eq 'M-A'", [3, 5]),
        ("Robot/Id in (10, 11) and Robot/Name ne 'r1'", [2, 3, 5]),
    ],
)
def test_navigation_paths_in_filter(filter_text: str, expected: list[int]) -> None:
    assert nav_ids({"$filter": filter_text}) == expected


def test_navigation_paths_in_orderby_and_the_navigations_read() -> None:
    params = {"$orderby": "Release/Name desc,Robot/Id", "$filter": "Machine/Name ne null"}
    assert nav_ids(params) == [3, 5, 2, 1]
    query = parse(params, filterable=NAV_FILTERABLE, navigation=NAVIGATION)
    assert query.navigations == {"Release", "Robot", "Machine"}
    assert parse({"$filter": "Id eq 1"}, navigation=NAVIGATION).navigations == frozenset()


def test_orderby_several_fields_with_count_and_paging() -> None:
    params = {"$orderby": "Reference desc,CreationTime asc", "$count": "true", "$skip": "1"}
    page, count = run({**params, "$top": "3"})
    # Nulls last descending; Ids 1 and 5 share a Reference, CreationTime breaks the tie.
    assert [row["Id"] for row in page] == [1, 5, 3]
    assert count == 5


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"$filter": "Robot/Color eq 'x'"},
            "Could not find a property named 'Color' on type 'Robot'.",
        ),
        (
            {"$filter": "Folder/Id eq 1"},
            "Could not find a navigation property named 'Folder' on type 'JobDto'. "
            "The simulator knows: Machine, Release, Robot.",
        ),
        (
            {"$filter": "Release/Key eq null"},
            "The property 'Release/Key' cannot be used in the $filter query option.",
        ),
        (
            {"$select": "Robot/Id"},
            "Property paths such as 'Robot/Id' are not supported; use the JobDto's own properties.",
        ),
    ],
)
def test_navigation_errors(params: dict[str, str], message: str) -> None:
    assert error_of(params, filterable=NAV_FILTERABLE, navigation=NAVIGATION) == message
