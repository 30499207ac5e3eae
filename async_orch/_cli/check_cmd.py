"""`async-orch check`: diagnose a configuration step by step.

Each step builds on the one before (a token needs a valid URL, a folder needs a
token, ...), so the checks stop at the first failure and say what is wrong and
how to fix it. Several (folder, process) pairs are checked one after the other.
Nothing is started: the last steps build the StartJobs body and ask Orchestrator
whether it could start a job now (ValidateDynamicJob, a dry run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from async_orch._auth import TokenManager
from async_orch._cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    add_connection_flags,
    configure_logging,
    connection,
    exit_codes,
    run_command,
)
from async_orch._client import OrchestratorClient
from async_orch._config import (
    ClientCredentials,
    PasswordCredentials,
    RefreshTokenCredentials,
    Settings,
    StaticToken,
)
from async_orch._errors import (
    AuthenticationError,
    ConfigurationError,
    NotFoundByNameError,
    OrchestratorError,
    PermissionDeniedError,
    TransportError,
    UnauthorizedError,
)
from async_orch._fatal import NO_API_FIX
from async_orch._http import AiohttpSender
from async_orch._jobs import JobRequest
from async_orch._models import Folder, Release, StartRequest, parse_input_arguments
from async_orch._resources import ASSIGN_FOLDER_FIX
from async_orch._sessions import request_timeout, session_for
from async_orch._validation import ValidationProblem

__all__ = ["add_parser", "run"]

EXAMPLES = (
    exit_codes(
        "0    every step passed",
        two="a step failed (its FAIL line says the fix), or a usage error",
    )
    + """
examples:
  async-orch check --simulator --folder Shared --process Echo
  async-orch check --profile prod --folder Finance/Invoices --process InvoiceProcessing
  async-orch check --folder Finance --process Echo --folder HR --process Onboarding

--folder and --process may repeat: one process is checked in each folder, one folder
for each process, or the i-th process in the i-th folder.
"""
)


class StepFailed(Exception):
    """A check failed: what is wrong, and how to fix it."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix


@dataclass
class _Found:
    settings: Settings | None = None
    folders: list[Folder] | None = None
    folder: Folder | None = None
    release: Release | None = None


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        usage="%(prog)s [--folder PATH] [--process NAME] [options]",
        help="diagnose a configuration step by step",
        description="Check the configuration step by step (URL, credentials, token, "
        "folders, folder, process, job access, start request) and explain the first "
        "failing step. Nothing is started.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--folder",
        action="append",
        help="folder to check (default: UIPATH_FOLDER_PATH); may repeat: the ones the "
        "credentials cannot see are listed together",
    )
    parser.add_argument(
        "--process",
        action="append",
        help="process to look for in that folder, and to validate (dry run); may repeat",
    )
    parser.add_argument("--inputs", help="InputArguments to validate, as a JSON object")
    add_connection_flags(parser)


def run(args: argparse.Namespace) -> int:
    configure_logging(args.verbose)
    return run_command(lambda: _check(args, sys.stdout))


async def _check(args: argparse.Namespace, out: TextIO) -> int:
    found = _Found()

    def report(status: str, step: str, detail: str) -> None:
        out.write(f"  {status:<5} {step:<14} {detail}\n")
        out.flush()

    try:
        async with connection(args) as settings:
            found.settings = settings
            out.write(f"checking {settings.url}\n")
            try:
                report("ok", "URL", _url_detail(settings))
            except StepFailed as failed:
                return _fail(out, "URL", failed)
            report("ok", "credentials", _credentials_detail(settings))
            pairs = _pairs(args.folder or [settings.folder], args.process or [None])
            requested = [f for f in dict.fromkeys(folder for folder, _ in pairs) if f]
            async with OrchestratorClient(settings) as orch:
                steps: list[tuple[str, Callable[[], Awaitable[str]]]] = [
                    ("token", lambda: _token(settings)),
                    ("folders", lambda: _folders(orch, found)),
                ]
                if len(requested) > 1:  # every folder it cannot see, listed together
                    steps.append(("folder access", lambda: _folder(orch, found, requested)))
                if not await _run_steps(steps, report, out):
                    return EXIT_USAGE
                failed_pairs = 0
                for folder, process in pairs:
                    if len(pairs) > 1:
                        out.write(f"{folder} / {process or '(no process)'}\n")
                    pair = _Found(settings=settings, folders=found.folders)
                    steps = _pair_steps(orch, pair, folder, process, args.inputs)
                    if not await _run_steps(steps, report, out):
                        failed_pairs += 1
                if failed_pairs:
                    return EXIT_USAGE
    except ConfigurationError as exc:
        if found.settings is not None:
            raise
        # Settings could not be built: a URL or a credentials problem, before any I/O.
        text = str(exc)
        if "profile" in text or "config file" in text:
            return _fail(
                out, "profile", StepFailed(text, "edit the config file or pick another --profile")
            )
        if "identity_url" in text:
            return _fail(out, "URL", StepFailed(text, _IDENTITY_URL_FIX))
        if "CA bundle" in text:
            return _fail(out, "CA bundle", StepFailed(text, _CA_BUNDLE_FIX))
        if "looks like a folder" in text:
            return _fail(out, "URL", StepFailed(text, _FOLDER_IN_URL_FIX))
        if "URL" in text:
            return _fail(out, "URL", StepFailed(text, _URL_FIX))
        return _fail(out, "credentials", StepFailed(text, _CREDENTIALS_FIX))
    out.write("all checks passed\n")
    return EXIT_OK


_CREDENTIALS_FIX = (
    "set UIPATH_CLIENT_ID and UIPATH_CLIENT_SECRET (App ID and App Secret of an external "
    "application), or put client_id and client_secret_env in a profile"
)

_CA_BUNDLE_FIX = (
    "point ASYNC_ORCH_CA_BUNDLE (or SSL_CERT_FILE) at a PEM file of the CAs your "
    "Orchestrator's certificate chains to, or unset both to trust the system's CAs"
)

_FOLDER_IN_URL_FIX = (
    "end the URL at the tenant's orchestrator_ and give the folder with --folder PATH "
    "(or UIPATH_FOLDER_PATH): it travels in the X-UIPATH-OrganizationUnitId header"
)

_IDENTITY_URL_FIX = (
    "correct ASYNC_ORCH_IDENTITY_URL (or the profile's identity_url), or unset it to use "
    "the token endpoint that goes with the Orchestrator URL"
)

_URL_FIX = (
    "set --url (or UIPATH_URL, or the profile's url) to "
    "https://cloud.uipath.com/{organization}/{tenant}/orchestrator_ (Automation Cloud) "
    "or https://your-server (on-premises)"
)


def _pairs(
    folders: list[str | None], processes: list[str | None]
) -> list[tuple[str | None, str | None]]:
    """The (folder, process) pairs that repeated --folder and --process name."""
    if len(processes) == 1:
        return [(folder, processes[0]) for folder in folders]
    if len(folders) == 1:
        return [(folders[0], process) for process in processes]
    if len(folders) == len(processes):
        return list(zip(folders, processes, strict=True))
    raise ConfigurationError(
        f"{len(folders)} --folder and {len(processes)} --process: give one process (checked "
        "in every folder), one folder, or as many of each (paired in order)"
    )


def _pair_steps(
    orch: OrchestratorClient,
    found: _Found,
    folder: str | None,
    process: str | None,
    inputs: str | None,
) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
    """The steps of one (folder, process) pair, each building on the one before."""
    return [
        ("folder", lambda: _folder(orch, found, [folder] if folder else [])),
        ("process", lambda: _process(orch, found, process)),
        ("jobs access", lambda: _jobs_access(orch, found)),
        ("start request", lambda: _start_request(found, inputs)),
        ("dry run", lambda: _dry_run(orch, found, inputs)),
    ]


async def _run_steps(
    steps: list[tuple[str, Callable[[], Awaitable[str]]]],
    report: Callable[[str, str, str], None],
    out: TextIO,
) -> bool:
    """Run ``steps`` until one fails; whether all passed."""
    for name, step in steps:
        try:
            report("ok", name, await step())
        except StepFailed as failed:
            _fail(out, name, failed)
            return False
    return True


def _fail(out: TextIO, step: str, failed: StepFailed) -> int:
    out.write(f"  FAIL  {step:<14} {failed.what}\n")
    if failed.fix:
        out.write(f"        fix: {failed.fix}\n")
    out.flush()
    return EXIT_USAGE


def _url_detail(settings: Settings) -> str:
    """What the URL in use means; Settings has already refused what cannot work
    (a folder in the path, another UiPath service), so this only describes it."""
    where = settings.orchestrator
    tail = urlsplit(settings.url).path.rstrip("/")
    extra = tail[len(urlsplit(where.base).path.rstrip("/")) :].strip("/")
    ignored = f" (/{extra} after the base is ignored; {where.base} is enough)" if extra else ""
    if where.kind == "cloud":
        return f"cloud URL, organization {where.organization}, tenant {where.tenant}{ignored}"
    return f"{where.kind} URL {where.base}{ignored}"


def _credentials_detail(settings: Settings) -> str:
    credentials = settings.credentials
    if isinstance(credentials, ClientCredentials):
        return f"external application (client id {credentials.client_id}, secret set)"
    if isinstance(credentials, RefreshTokenCredentials):
        return f"legacy refresh token (client id {credentials.client_id})"
    if isinstance(credentials, PasswordCredentials):
        return f"on-premises user {credentials.username} (tenant {credentials.tenancy_name})"
    assert isinstance(credentials, StaticToken)
    return "access token (personal access token; it cannot be renewed)"


async def _token(settings: Settings) -> str:
    token_url = settings.token_url
    async with session_for(settings, timeout=request_timeout(settings)) as session:
        manager = TokenManager(
            settings.credentials, sender=AiohttpSender(session), token_url=token_url
        )
        try:
            await manager.get_token()
        except AuthenticationError as exc:
            text = str(exc)
            if exc.hint and text.endswith(exc.hint):
                raise StepFailed(text[: -len(exc.hint)].rstrip(". "), exc.hint) from exc
            raise StepFailed(text, "check the credentials and the token URL") from exc
        except TransportError as exc:
            raise StepFailed(
                f"cannot reach the token endpoint: {exc}",
                "check the host in the URL (typo? VPN? proxy?); for Automation Cloud it is "
                "cloud.uipath.com",
            ) from exc
    if isinstance(settings.credentials, ClientCredentials):
        return f"issued by {token_url} for scopes {settings.credentials.scopes}"
    return f"issued by {token_url}" if token_url else "given as is (not checked until used)"


async def _folders(orch: OrchestratorClient, found: _Found) -> str:
    try:
        folders = await orch.api.list_folders()
    except ConfigurationError as exc:  # no API at this URL (_fatal.no_api_here)
        raise StepFailed(str(exc).removesuffix(f": {NO_API_FIX}"), NO_API_FIX) from exc
    except UnauthorizedError as exc:
        raise StepFailed(
            f"Orchestrator refused the token: {exc.message}",
            "the URL must name the organization and tenant the credentials belong to",
        ) from exc
    except AuthenticationError as exc:
        raise StepFailed(str(exc), "the URL must name the credentials' tenant") from exc
    except PermissionDeniedError as exc:
        raise StepFailed(
            f"the token may not list folders: {exc.message}",
            "grant the scope OR.Folders.Read (or OR.Folders) to the external application",
        ) from exc
    found.folders = folders
    names = ", ".join(f.fully_qualified_name for f in folders[:8])
    more = f" (and {len(folders) - 8} more)" if len(folders) > 8 else ""
    if not folders:
        raise StepFailed(
            "the credentials see no folder",
            "assign the external application (or user) to the folders it should use",
        )
    return f"{len(folders)} visible: {names}{more}"


async def _folder(orch: OrchestratorClient, found: _Found, folders: list[str]) -> str:
    """Resolve every requested folder; the first one is used by the later steps."""
    visible = ", ".join(f.fully_qualified_name for f in (found.folders or [])[:8])
    if not folders:
        raise StepFailed(
            "no folder given; every job call needs one (Orchestrator reads it from the "
            "X-UIPATH-OrganizationUnitId header, which async-orch fills in)",
            f"pass --folder PATH or set UIPATH_FOLDER_PATH; visible folders: {visible}",
        )
    resolved: list[Folder] = []
    unseen: list[NotFoundByNameError] = []
    for folder in dict.fromkeys(folders):
        try:
            resolved.append(await orch.api.resolve_folder(folder))
        except NotFoundByNameError as exc:
            unseen.append(exc)
    if len(unseen) == 1 and len(folders) == 1:
        raise StepFailed(str(unseen[0]), f"use one of the visible folders: {visible}")
    if unseen:
        names = ", ".join(repr(e.name) for e in unseen)
        raise StepFailed(
            f"these credentials cannot see {len(unseen)} of the {len(folders)} folders: "
            f"{names}; they can see: {visible or 'none'}",
            f"{ASSIGN_FOLDER_FIX} (or correct the folder's path)",
        )
    found.folder = resolved[0]
    return ", ".join(f"{f.fully_qualified_name} (Id {f.id})" for f in resolved)


async def _process(orch: OrchestratorClient, found: _Found, process: str | None) -> str:
    if not process:
        return "skipped (give --process NAME to check it)"
    assert found.folder is not None
    try:
        release = await orch.api.resolve_release(found.folder, process)
    except NotFoundByNameError as exc:
        raise StepFailed(
            str(exc), "use a process name listed above, or deploy the process to this folder"
        ) from exc
    except PermissionDeniedError as exc:
        raise StepFailed(
            f"the token may not read processes: {exc.message}",
            "grant the scope OR.Execution.Read (or OR.Execution)",
        ) from exc
    found.release = release
    return f"{release.name} (release key {release.key})"


async def _jobs_access(orch: OrchestratorClient, found: _Found) -> str:
    assert found.folder is not None
    try:
        await orch.api.list_jobs(found.folder, top=1)
    except PermissionDeniedError as exc:
        raise StepFailed(
            f"the token may not read jobs: {exc.message}",
            "grant the scope OR.Jobs (or OR.Jobs.Read to watch, OR.Jobs.Write to start)",
        ) from exc
    return f"jobs of {found.folder.fully_qualified_name} can be read"


async def _start_request(found: _Found, inputs: str | None) -> str:
    if found.release is None:
        return "skipped (needs --process)"
    try:
        parsed = parse_input_arguments(inputs) if inputs is not None else None
        body = StartRequest(
            release_key=found.release.key, reference="async-orch-check", input_arguments=parsed
        ).to_api()
    except OrchestratorError as exc:
        raise StepFailed(str(exc), "pass --inputs as a JSON object, e.g. '{\"n\": 1}'") from exc
    # UNCONFIRMED: Orchestrator offers no dry run of StartJobs, so the body is only
    # validated here; whether a robot can take the job shows only when one starts.
    size = len(str(body["startInfo"].get("InputArguments") or ""))
    return f"StartJobs body valid (inputs {size} characters); nothing was started"


async def _dry_run(orch: OrchestratorClient, found: _Found, inputs: str | None) -> str:
    """Orchestrator's own answer (ValidateDynamicJob): could a job start now?"""
    if found.release is None or found.folder is None:
        return "skipped (needs --process)"
    request = JobRequest(
        process=found.release.name,
        folder=found.folder.fully_qualified_name,
        inputs=parse_input_arguments(inputs) if inputs is not None else None,
    )
    try:
        [validation] = await orch.validate([request])
    except PermissionDeniedError as exc:
        raise StepFailed(
            f"the token may not validate a start: {exc.message}",
            "grant the scope OR.Jobs (or OR.Jobs.Write)",
        ) from exc
    if validation.is_valid:
        return "IsValid: a job could start now (ValidateDynamicJob); nothing was started"
    problems = validation.problems or (ValidationProblem("?", "no reason given"),)
    # One line per error, each followed by its fix (the fixes are printed here).
    lines = [f"IsValid: false (ValidateDynamicJob), {len(problems)} error(s)"]
    for problem in problems:
        lines.append(f"        error {problem.code}: {problem.message}")
        lines.append(f"        fix: {problem.fix or 'see the error above'}")
    raise StepFailed("\n".join(lines), "")
