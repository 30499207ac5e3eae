"""The calls a hand-written ``requests`` script makes, as in the users' reports.

Token (form body), ``GET /odata/Folders`` for the folder Id, ``GET /odata/Releases``
for the release Key, ``StartJobs``, then polling the job until it ends. Folders and
releases are looked up once per folder, not per job: the fair version of such a
script.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from peers.common import TERMINAL_STATES

__all__ = ["Script"]


class Script:
    """One logged-in script: its token, folder ids and release keys."""

    def __init__(
        self,
        *,
        url: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        scope: str,
        process: str,
        folders: list[str],
        poll_list: bool = False,
    ) -> None:
        self.url = url.rstrip("/")
        self.poll_list = poll_list
        token = requests.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": scope,
            },
            timeout=60,
        )
        token.raise_for_status()
        self.auth = {"Authorization": "Bearer " + token.json()["access_token"]}
        listed = requests.get(f"{self.url}/odata/Folders", headers=self.auth, timeout=60)
        listed.raise_for_status()
        ids = {f["FullyQualifiedName"]: f["Id"] for f in listed.json()["value"]}
        self.folder_ids = {name: ids[name] for name in folders}
        self.release_keys: dict[str, str] = {}
        for name, folder_id in self.folder_ids.items():
            releases = requests.get(
                f"{self.url}/odata/Releases",
                params={"$filter": f"Name eq '{process}'"},
                headers={**self.auth, "X-UIPATH-OrganizationUnitId": str(folder_id)},
                timeout=60,
            )
            releases.raise_for_status()
            self.release_keys[name] = releases.json()["value"][0]["Key"]

    def headers(self, folder: str) -> dict[str, str]:
        return {**self.auth, "X-UIPATH-OrganizationUnitId": str(self.folder_ids[folder])}

    def start(self, session: requests.Session, folder: str, inputs: dict[str, Any]) -> int:
        """POST StartJobs for one job; return its Id."""
        response = session.post(
            f"{self.url}/odata/Jobs/UiPath.Server.Configuration.OData.StartJobs",
            json={
                "startInfo": {
                    "ReleaseKey": self.release_keys[folder],
                    "Strategy": "ModernJobsCount",
                    "JobsCount": 1,
                    "InputArguments": json.dumps(inputs),
                }
            },
            headers=self.headers(folder),
            timeout=60,
        )
        response.raise_for_status()
        return int(response.json()["value"][0]["Id"])

    def state(self, session: requests.Session, folder: str, job_id: int) -> dict[str, Any]:
        """Read a job: ``GET /odata/Jobs({id})``, or the list filtered by Id."""
        if self.poll_list:
            response = session.get(
                f"{self.url}/odata/Jobs",
                params={"$filter": f"Id eq {job_id}"},
                headers=self.headers(folder),
                timeout=60,
            )
            response.raise_for_status()
            job: dict[str, Any] = response.json()["value"][0]
            return job
        response = session.get(
            f"{self.url}/odata/Jobs({job_id})", headers=self.headers(folder), timeout=60
        )
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    @staticmethod
    def is_final(job: dict[str, Any]) -> bool:
        return job["State"] in TERMINAL_STATES
