"""What a simulated process returns, and how a faulted one says why.

Each process of a scenario names an ``outputs`` kind:

* ``echo``: the OutputArguments are the job's input arguments, unchanged.
* ``invoice``: ``{"InvoicesProcessed": n, "Total": t, "Currency": c, "Status": "Completed"}``.
  ``n`` and ``t`` come from an ``Invoices`` input (a list of ``{"Amount": ...}``
  objects) when given, else ``n`` from ``InvoiceCount`` (or a seeded draw) with
  seeded amounts. ``Currency`` is echoed from the inputs (default ``EUR``).
* ``summary``: ``{"ItemsProcessed": n, "ItemsFailed": 0, "Status": "Completed",
  "Summary": "..."}`` with ``n`` from an ``Items`` list, an ``ItemCount`` input or a
  seeded draw.
* ``empty``: ``{}``.

Values depend only on the inputs and a per-job seed, so runs are reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

__all__ = ["FAULT_MESSAGES", "compute_outputs"]

# Info of a Faulted job; the "Execution error : <exception>" shape is what the
# Jobs page and JobDto.Info show for an unhandled workflow exception.
FAULT_MESSAGES = (
    "Execution error : UiPath.Core.SelectorNotFoundException: Cannot find the UI element "
    "corresponding to this selector: <wnd app='erp.exe' title='Invoice Entry' /> "
    "<ctrl name='Submit' role='push button' />",
    "Execution error : System.TimeoutException: The operation has timed out. "
    "at Get Text 'Total amount'",
    "Execution error : System.ArgumentException: Value does not fall within the expected range. "
    "at Assign 'out_Total'",
    "Execution error : UiPath.Excel.ExcelException: The process cannot access the file "
    "'C:\\Data\\batch.xlsx' because it is being used by another process.",
    "Execution error : System.Net.Http.HttpRequestException: Response status code does not "
    "indicate success: 503 (Service Unavailable). at HTTP Request 'Post booking'",
)


def compute_outputs(kind: str, inputs: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Return the OutputArguments object of a successful job."""
    rng = random.Random(seed)
    if kind == "echo":
        return dict(inputs)
    if kind == "invoice":
        return _invoice(inputs, rng)
    if kind == "summary":
        return _summary(inputs, rng)
    return {}


def _count(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _invoice(inputs: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    invoices = inputs.get("Invoices")
    if isinstance(invoices, list):
        amounts = []
        for item in invoices:
            amount = item.get("Amount", 0) if isinstance(item, dict) else item
            if isinstance(amount, int | float) and not isinstance(amount, bool):
                amounts.append(float(amount))
        count = len(invoices)
    else:
        given = _count(inputs.get("InvoiceCount"))
        count = rng.randint(1, 40) if given is None else given
        amounts = [rng.randint(1_000, 250_000) / 100 for _ in range(count)]
    return {
        "InvoicesProcessed": count,
        "Total": round(sum(amounts), 2),
        "Currency": str(inputs.get("Currency", "EUR")),
        "Status": "Completed",
    }


def _summary(inputs: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    items = inputs.get("Items")
    count = len(items) if isinstance(items, list) else _count(inputs.get("ItemCount"))
    if count is None:
        count = rng.randint(5, 500)
    return {
        "ItemsProcessed": count,
        "ItemsFailed": 0,
        "Status": "Completed",
        "Summary": f"{count} item(s) processed",
    }
