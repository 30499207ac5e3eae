"""Response bodies published by UiPath, shared by the tests that read them."""

from __future__ import annotations

from typing import Any

# The job in the 201 body of a real StartJobs call: the published Postman sample
# (user-reports/postman-sample-...), 2018.
POSTMAN_JOB: dict[str, Any] = {
    "Key": "b618cdfd-8714-4dbf-9a00-0586a8953c90",
    "StartTime": None,
    "EndTime": None,
    "State": "Pending",
    "Source": "Manual",
    "SourceType": "Manual",
    "BatchExecutionKey": "abbbb5de-d46a-4b9b-8f73-8a3247be0a0e",
    "Info": None,
    "CreationTime": "2018-09-21T13:28:31.1449691Z",
    "StartingScheduleId": None,
    "ReleaseName": "Heyyo_playground",
    "Type": "Unattended",
    "InputArguments": '{"greeting":"Aloha"}',
    "OutputArguments": None,
    "Id": 160856,
}
