"""``POST /odata/Jobs/UiPath.Server.Configuration.OData.ValidateDynamicJob``: a dry run.

"Validates the input which would start a job" (spec/orchestrator.yaml, operation
``Jobs_ValidateDynamicJob``): the body is StartJobs' ``{"startInfo": ...}``, the answer a
``ValidationResultDto {IsValid, Errors, ErrorCodes}`` whose codes are the
``JobPendingReasons`` (orchestrator-api.md section 8). Nothing is started.

ASSUMPTIONS (not in our sources): a body StartJobs would refuse as malformed (400/404)
gets the same refusal here; IsValid is false whenever any reason applies, including
TemplateFullCapacity (the job would be created but wait); Errors are our texts, one
per code, in the same order.
"""

from __future__ import annotations

from typing import Any

from async_orch.simulator.robots import REASON_TEXTS, RuntimePool
from async_orch.simulator.start_request import UnknownRobotIds, parse_start_jobs
from async_orch.simulator.world import Folder

__all__ = ["validate_dynamic_job"]


def validate_dynamic_job(body: object, folder: Folder, pool: RuntimePool | None) -> dict[str, Any]:
    """The ValidationResultDto for starting *body* in *folder* now."""
    codes = []
    try:
        parse_start_jobs(body, folder)
    except UnknownRobotIds:
        codes.append("RobotNotAssignedToFolder")
    if pool is not None and (reason := pool.pending_reason(folder.id)) is not None:
        codes.append(reason)
    return {
        "IsValid": not codes,
        "Errors": [REASON_TEXTS[code] for code in codes],
        "ErrorCodes": codes,
    }
