"""Settings, credentials, URL parsing and the environment reader (pure, sync)."""

from __future__ import annotations

import dataclasses
import math
import os

import pytest

from async_orch._config import (
    DEFAULT_SCOPES,
    LEGACY_TOKEN_URL,
    ClientCredentials,
    ConnectionLimits,
    PasswordCredentials,
    RefreshTokenCredentials,
    RequestTimeouts,
    RetryPolicy,
    Settings,
    StaticToken,
    parse_orchestrator_url,
)
from async_orch._errors import ConfigurationError

CLOUD = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
CLOUD_TOKEN = "https://cloud.uipath.com/acme/identity_/connect/token"
SECRET = "s3cr3t-value-xyz"

# -- URL parsing -------------------------------------------------------------------------

ACCEPTED = [
    # (pasted URL, base, kind, organization, tenant, identity token URL)
    (CLOUD, CLOUD, "cloud", "acme", "DefaultTenant", CLOUD_TOKEN),
    (CLOUD + "/", CLOUD, "cloud", "acme", "DefaultTenant", CLOUD_TOKEN),
    (CLOUD + "/odata/Jobs?$top=1#x", CLOUD, "cloud", "acme", "DefaultTenant", CLOUD_TOKEN),
    (CLOUD + "/jobs", CLOUD, "cloud", "acme", "DefaultTenant", CLOUD_TOKEN),
    (CLOUD + "/processes?fid=42", CLOUD, "cloud", "acme", "DefaultTenant", CLOUD_TOKEN),
    (
        "https://cloud.uipath.com/acme/DefaultTenant",
        CLOUD,
        "cloud",
        "acme",
        "DefaultTenant",
        CLOUD_TOKEN,
    ),
    (
        "https://cloud.uipath.com/acme/DefaultTenant/odata/Jobs",
        CLOUD,
        "cloud",
        "acme",
        "DefaultTenant",
        CLOUD_TOKEN,
    ),
    (
        "  HTTPS://Cloud.UiPath.com/acme/DefaultTenant/Orchestrator_  ",
        CLOUD,
        "cloud",
        "acme",
        "DefaultTenant",
        CLOUD_TOKEN,
    ),
    (
        "https://automation.example.com/org1/t1/orchestrator_",
        "https://automation.example.com/org1/t1/orchestrator_",
        "cloud",
        "org1",
        "t1",
        "https://automation.example.com/org1/identity_/connect/token",
    ),
    (
        "http://127.0.0.1:8123/org/tenant/orchestrator_/odata/Folders",
        "http://127.0.0.1:8123/org/tenant/orchestrator_",
        "cloud",
        "org",
        "tenant",
        "http://127.0.0.1:8123/org/identity_/connect/token",
    ),
    (
        "https://orch.example.com",
        "https://orch.example.com",
        "onprem",
        None,
        None,
        "https://orch.example.com/identity/connect/token",
    ),
    (
        "https://orch.example.com/odata/Jobs?$top=3",
        "https://orch.example.com",
        "onprem",
        None,
        None,
        "https://orch.example.com/identity/connect/token",
    ),
    (
        "https://orch.example.com:8443/Orchestrator/odata/Jobs",
        "https://orch.example.com:8443/Orchestrator",
        "onprem",
        None,
        None,
        "https://orch.example.com:8443/identity/connect/token",
    ),
    (
        "http://127.0.0.1:9000/",
        "http://127.0.0.1:9000",
        "onprem",
        None,
        None,
        "http://127.0.0.1:9000/identity/connect/token",
    ),
    (
        "https://platform.uipath.com/acct/tnt",
        "https://platform.uipath.com/acct/tnt",
        "legacy",
        "acct",
        "tnt",
        LEGACY_TOKEN_URL,
    ),
    (
        "https://platform.uipath.com/acct/tnt/odata/Folders",
        "https://platform.uipath.com/acct/tnt",
        "legacy",
        "acct",
        "tnt",
        LEGACY_TOKEN_URL,
    ),
]


@pytest.mark.parametrize(
    ("url", "base", "kind", "organization", "tenant", "identity"), ACCEPTED, ids=lambda v: str(v)
)
def test_parse_accepts(
    url: str,
    base: str,
    kind: str,
    organization: str | None,
    tenant: str | None,
    identity: str,
) -> None:
    parsed = parse_orchestrator_url(url)
    assert parsed.base == base
    assert parsed.kind == kind
    assert parsed.organization == organization
    assert parsed.tenant == tenant
    assert parsed.identity_token_url == identity
    assert not parsed.base.endswith("/")


def test_password_auth_url_is_under_the_base() -> None:
    parsed = parse_orchestrator_url("https://orch.example.com/")
    assert parsed.password_auth_url == "https://orch.example.com/api/Account/Authenticate"


REJECTED = [
    # (URL, words the message must contain)
    ("", "empty"),
    ("cloud.uipath.com/acme/DefaultTenant", "write 'https://cloud.uipath.com/acme/DefaultTenant'"),
    ("ftp://orch.example.com", "not http or https"),
    ("https://", "no host"),
    ("https://cloud.uipath.com", "organization and tenant missing"),
    ("https://cloud.uipath.com/odata/Jobs", "organization and tenant missing"),
    ("https://cloud.uipath.com/acme", "tenant missing from the URL"),
    ("https://cloud.uipath.com/acme/orchestrator_", "tenant missing from the URL"),
    ("https://cloud.uipath.com/acme/odata/Jobs", "tenant missing from the URL"),
    ("https://platform.uipath.com/acct", "tenant missing from the URL"),
    ("https://platform.uipath.com", "account and tenant missing"),
    ("https://cloud.uipath.com/identity_/connect/token", "identity (token) server"),
    ("https://cloud.uipath.com/acme/identity_/connect/token", "identity (token) server"),
    ("https://orch.example.com/identity/connect/token", "identity (token) server"),
    ("https://account.uipath.com/oauth/token", "identity (token) server"),
    ("https://cloud.uipath.com/acme/DefaultTenant/Shared", "'Shared' looks like a folder"),
    ("https://cloud.uipath.com/acme/DefaultTenant/Shared/odata/Jobs", "looks like a folder"),
    (CLOUD + "/Finance/odata/Jobs", "'Finance' looks like a folder"),
    (CLOUD + "/Shared", "'Shared' looks like a folder"),  # not a page of the web UI
    (CLOUD + "/Finance/Invoices", "'Finance' looks like a folder"),
    ("https://platform.uipath.com/acct/tnt/Finance", "looks like a folder"),
    ("https://cloud.uipath.com/acme/portal_/externalApps", "another UiPath service"),
    ("https://cloud.uipath.com/acme/DefaultTenant/studio_/x", "another UiPath service"),
    ("https://cloud.uipath.com/a/b/c/orchestrator_", "only organization and tenant"),
    ("https://orch.example.com/org/tenant", "add orchestrator_"),
    ("https://orch.example.com/a/b/c", "unexpected path"),
]


@pytest.mark.parametrize(("url", "words"), REJECTED, ids=lambda v: str(v))
def test_parse_rejects_with_the_fix(url: str, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_orchestrator_url(url)
    assert words in str(caught.value)


def test_folder_error_names_the_folder_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_orchestrator_url("https://cloud.uipath.com/acme/DefaultTenant/Shared")
    assert "UIPATH_FOLDER_PATH" in str(caught.value)
    assert CLOUD in str(caught.value)


def test_password_in_url_is_rejected_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_orchestrator_url(f"https://admin:{SECRET}@orch.example.com")
    assert SECRET not in str(caught.value)


# -- credentials and policies ------------------------------------------------------------


@pytest.mark.parametrize(
    "credentials",
    [
        ClientCredentials(client_id="app-id", client_secret=SECRET),
        RefreshTokenCredentials(client_id="cid", refresh_token=SECRET, tenant_name="T"),
        PasswordCredentials(tenancy_name="Default", username="admin", password=SECRET),
        StaticToken(token=SECRET),
    ],
    ids=lambda c: type(c).__name__,
)
def test_secrets_never_in_repr(
    credentials: ClientCredentials | RefreshTokenCredentials | PasswordCredentials | StaticToken,
) -> None:
    settings = Settings(url="https://orch.example.com", credentials=credentials)
    assert SECRET not in repr(credentials)
    assert SECRET not in str(credentials)
    assert SECRET not in repr(settings)
    assert type(credentials).__name__ in repr(settings)


def test_dataclasses_are_frozen_slotted_and_keyword_only() -> None:
    credentials = ClientCredentials(client_id="a", client_secret="b")
    with pytest.raises(dataclasses.FrozenInstanceError):
        credentials.client_id = "c"  # type: ignore[misc]
    assert not hasattr(credentials, "__dict__")
    with pytest.raises(TypeError):
        ClientCredentials("a", "b")  # type: ignore[call-arg]
    assert credentials.scopes == DEFAULT_SCOPES == "OR.Folders.Read OR.Execution.Read OR.Jobs"


def test_policy_defaults() -> None:
    assert RetryPolicy() == RetryPolicy(
        attempts=5, wait_initial=0.5, wait_max=10.0, wait_jitter=1.0, retry_after_max=120.0
    )
    assert RequestTimeouts() == RequestTimeouts(total=60, connect=10)
    assert ConnectionLimits() == ConnectionLimits(max_connections=100, per_host=0)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: ClientCredentials(client_id="", client_secret="x"), "client_id is empty"),
        (lambda: ClientCredentials(client_id="x", client_secret="  "), "client_secret is empty"),
        (lambda: StaticToken(token=""), "token is empty"),
        (lambda: RetryPolicy(attempts=0), "at least 1"),
        (lambda: RetryPolicy(wait_max=-1), "wait_max must not be negative"),
        (lambda: RequestTimeouts(total=0), "RequestTimeouts.total must be a finite number of"),
        (lambda: RequestTimeouts(connect=math.nan), "RequestTimeouts.connect must be a finite"),
        (lambda: RequestTimeouts(total=math.inf), "RequestTimeouts.total must be a finite"),
        (lambda: ConnectionLimits(max_connections=-1), "must not be negative"),
    ],
)
def test_invalid_values_are_refused(build: object, words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()  # type: ignore[operator]
    assert words in str(caught.value)


# -- settings ----------------------------------------------------------------------------


def cc() -> ClientCredentials:
    return ClientCredentials(client_id="app-id", client_secret=SECRET)


def test_settings_parse_the_url_up_front() -> None:
    with pytest.raises(ConfigurationError, match="tenant missing"):
        Settings(url="https://cloud.uipath.com/acme", credentials=cc())


@pytest.mark.parametrize(
    ("url", "credentials", "token_url"),
    [
        (CLOUD, cc(), CLOUD_TOKEN),
        ("https://orch.example.com", cc(), "https://orch.example.com/identity/connect/token"),
        (
            "https://orch.example.com",
            PasswordCredentials(tenancy_name="Default", username="u", password="p"),
            "https://orch.example.com/api/Account/Authenticate",
        ),
        (
            "https://platform.uipath.com/acct/tnt",
            RefreshTokenCredentials(client_id="c", refresh_token="r", tenant_name="tnt"),
            LEGACY_TOKEN_URL,
        ),
        (CLOUD, StaticToken(token="t"), None),
    ],
    ids=["cloud", "onprem-client", "onprem-password", "legacy", "static"],
)
def test_token_url_follows_credentials(url: str, credentials: object, token_url: str) -> None:
    settings = Settings(url=url, credentials=credentials)  # type: ignore[arg-type]
    assert settings.token_url == token_url


def test_identity_url_overrides_the_token_url() -> None:
    settings = Settings(url=CLOUD, credentials=cc(), identity_url="http://127.0.0.1:1/t")
    assert settings.token_url == "http://127.0.0.1:1/t"
    with pytest.raises(ConfigurationError, match="identity_url"):
        Settings(url=CLOUD, credentials=cc(), identity_url="cloud.uipath.com/identity_")


def test_password_flow_is_refused_on_automation_cloud() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(
            url=CLOUD,
            credentials=PasswordCredentials(tenancy_name="T", username="u", password=SECRET),
        )
    assert "UIPATH_CLIENT_ID" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_client_credentials_are_refused_on_the_legacy_platform() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings(url="https://platform.uipath.com/acct/tnt", credentials=cc())
    assert "https://cloud.uipath.com/acct/tnt/orchestrator_" in str(caught.value)


def test_credentials_of_another_type_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="ClientCredentials"):
        Settings(url=CLOUD, credentials="token")  # type: ignore[arg-type]


# -- from_env ----------------------------------------------------------------------------

BASE_ENV = {"UIPATH_URL": CLOUD}


def test_from_env_client_credentials() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "UIPATH_CLIENT_ID": " app-id ",
            "UIPATH_CLIENT_SECRET": SECRET,
            "UIPATH_FOLDER_PATH": "Finance/Invoices",
            "ASYNC_ORCH_SCOPES": "OR.Jobs OR.Folders",
        }
    )
    assert settings.credentials == ClientCredentials(
        client_id="app-id", client_secret=SECRET, scopes="OR.Jobs OR.Folders"
    )
    assert settings.folder == "Finance/Invoices"
    assert settings.url == CLOUD
    assert settings.token_url == CLOUD_TOKEN


def test_from_env_prefers_client_credentials_over_a_token() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "UIPATH_ACCESS_TOKEN": "pat",
            "UIPATH_CLIENT_ID": "id",
            "UIPATH_CLIENT_SECRET": "secret",
        }
    )
    assert isinstance(settings.credentials, ClientCredentials)


def test_from_env_static_token() -> None:
    settings = Settings.from_env({**BASE_ENV, "UIPATH_ACCESS_TOKEN": "pat-123"})
    assert settings.credentials == StaticToken(token="pat-123")
    assert settings.token_url is None


def test_from_env_refresh_token_takes_the_tenant_from_the_url_or_env() -> None:
    env = {
        "UIPATH_URL": "https://platform.uipath.com/acct/tnt",
        "UIPATH_CLIENT_ID": "cid",
        "ASYNC_ORCH_REFRESH_TOKEN": SECRET,
    }
    assert Settings.from_env(env).credentials == RefreshTokenCredentials(
        client_id="cid", refresh_token=SECRET, tenant_name="tnt"
    )
    named = Settings.from_env({**env, "UIPATH_TENANT_NAME": "Other"})
    assert isinstance(named.credentials, RefreshTokenCredentials)
    assert named.credentials.tenant_name == "Other"
    with pytest.raises(ConfigurationError, match="UIPATH_TENANT_NAME"):
        Settings.from_env({**env, "UIPATH_URL": "https://orch.example.com"})


def test_from_env_password_defaults_to_the_default_tenant() -> None:
    env = {
        "UIPATH_URL": "https://orch.example.com",
        "ASYNC_ORCH_USERNAME": "admin",
        "ASYNC_ORCH_PASSWORD": SECRET,
    }
    assert Settings.from_env(env).credentials == PasswordCredentials(
        tenancy_name="Default", username="admin", password=SECRET
    )
    named = Settings.from_env({**env, "UIPATH_TENANT_NAME": "Acme"})
    assert isinstance(named.credentials, PasswordCredentials)
    assert named.credentials.tenancy_name == "Acme"


def test_from_env_completes_a_bare_cloud_host_like_uip_login_writes_it() -> None:
    settings = Settings.from_env(
        {
            "UIPATH_URL": "https://cloud.uipath.com/",
            "UIPATH_ORGANIZATION_NAME": "acme",
            "UIPATH_TENANT_NAME": "DefaultTenant",
            "UIPATH_ACCESS_TOKEN": "t",
        }
    )
    assert settings.orchestrator.base == CLOUD


def test_from_env_folder_key_or_path_but_not_both() -> None:
    key = "6f1c4f5e-3f8e-4d1c-9a4e-0b7f1d2a3c4d"
    env = {**BASE_ENV, "UIPATH_ACCESS_TOKEN": "t", "UIPATH_FOLDER_KEY": key}
    assert Settings.from_env(env).folder == key
    assert Settings.from_env({**env, "UIPATH_FOLDER_KEY": " "}).folder is None
    # Both: which one was meant? Refused (the SDK silently takes the Key).
    with pytest.raises(ConfigurationError, match="are both set") as caught:
        Settings.from_env({**env, "UIPATH_FOLDER_PATH": "Shared"})
    assert "\n" not in str(caught.value)
    # Settings(folder=...) given in code wins over both: nothing to refuse.
    assert Settings.from_env({**env, "UIPATH_FOLDER_PATH": "Shared"}, folder="HR").folder == "HR"


def test_from_env_numbers() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "UIPATH_CLIENT_ID": "id",
            "UIPATH_CLIENT_SECRET": "secret",
            "ASYNC_ORCH_TIMEOUT": "30",
            "ASYNC_ORCH_CONNECT_TIMEOUT": "2.5",
            "ASYNC_ORCH_RETRY_ATTEMPTS": "2",
            "ASYNC_ORCH_MAX_CONNECTIONS": "8",
            "ASYNC_ORCH_IDENTITY_URL": "http://127.0.0.1:5/token",
        }
    )
    assert settings.timeout == RequestTimeouts(total=30, connect=2.5)
    assert settings.retry.attempts == 2
    assert settings.limits.max_connections == 8
    assert settings.token_url == "http://127.0.0.1:5/token"


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"ASYNC_ORCH_TIMEOUT": "soon"}, "ASYNC_ORCH_TIMEOUT='soon' is not a number"),
        ({"ASYNC_ORCH_RETRY_ATTEMPTS": "2.5"}, "ASYNC_ORCH_RETRY_ATTEMPTS='2.5'"),
        ({"ASYNC_ORCH_RETRY_ATTEMPTS": "0"}, "ASYNC_ORCH_RETRY_ATTEMPTS='0' must be a whole "
         "number of at least 1"),
        # Non-finite and non-positive seconds name the variable, not the class they feed.
        ({"ASYNC_ORCH_TIMEOUT": "nan"}, "ASYNC_ORCH_TIMEOUT='nan' must be a finite number of "
         "seconds, more than 0"),
        ({"ASYNC_ORCH_TIMEOUT": "inf"}, "ASYNC_ORCH_TIMEOUT='inf' must be a finite number"),
        ({"ASYNC_ORCH_TIMEOUT": "1e400"}, "ASYNC_ORCH_TIMEOUT='1e400' must be a finite number"),
        ({"ASYNC_ORCH_TIMEOUT": "-1"}, "ASYNC_ORCH_TIMEOUT='-1' must be a finite number"),
        ({"ASYNC_ORCH_CONNECT_TIMEOUT": "0"}, "ASYNC_ORCH_CONNECT_TIMEOUT='0' must be a finite "
         "number of seconds, more than 0"),
        ({"ASYNC_ORCH_RECONCILE_WINDOW": "nan"}, "ASYNC_ORCH_RECONCILE_WINDOW='nan' must be a "
         "finite number of seconds, 0 or more"),
        ({"ASYNC_ORCH_MAX_CONNECTIONS": "-1"}, "ASYNC_ORCH_MAX_CONNECTIONS='-1' must be a whole "
         "number of at least 0"),
    ],
)  # fmt: skip
def test_from_env_bad_numbers_name_the_variable(extra: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({**BASE_ENV, "UIPATH_ACCESS_TOKEN": "t", **extra})
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "UIPATH_URL is not set"),
        ({"UIPATH_URL": "   "}, "UIPATH_URL is not set"),
        (BASE_ENV, "no credentials"),
        ({**BASE_ENV, "UIPATH_CLIENT_ID": "id"}, "UIPATH_CLIENT_SECRET is not"),
        ({**BASE_ENV, "UIPATH_CLIENT_ID": "id", "UIPATH_CLIENT_SECRET": ""}, "not"),
        (
            {"UIPATH_URL": "https://orch.example.com", "ASYNC_ORCH_USERNAME": "u"},
            "ASYNC_ORCH_PASSWORD is not set",
        ),
        (
            {"UIPATH_URL": "https://orch.example.com", "ASYNC_ORCH_PASSWORD": "p"},
            "ASYNC_ORCH_USERNAME is not set",
        ),
        ({"UIPATH_URL": "cloud.uipath.com/a/b", "UIPATH_ACCESS_TOKEN": "t"}, "no scheme"),
    ],
)
def test_from_env_says_what_is_missing(env: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert words in str(caught.value)


def test_from_env_overrides_win_and_none_means_not_given() -> None:
    settings = Settings.from_env(
        {**BASE_ENV, "UIPATH_ACCESS_TOKEN": "t", "UIPATH_FOLDER_PATH": "Shared"},
        url="https://orch.example.com",
        folder=None,
        retry=RetryPolicy(attempts=1),
        credentials=cc(),
    )
    assert settings.url == "https://orch.example.com"
    assert settings.folder == "Shared"
    assert settings.retry.attempts == 1
    assert settings.credentials == cc()


def test_from_env_overrides_make_env_credentials_unnecessary() -> None:
    settings = Settings.from_env({}, url=CLOUD, credentials=StaticToken(token="t"))
    assert settings.credentials == StaticToken(token="t")


def test_from_env_rejects_unknown_overrides() -> None:
    with pytest.raises(TypeError, match="base_url"):
        Settings.from_env(BASE_ENV, base_url="x")


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("UIPATH_", "ASYNC_ORCH_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("UIPATH_URL", "https://orch.example.com")
    monkeypatch.setenv("UIPATH_ACCESS_TOKEN", "from-os")
    assert Settings.from_env().credentials == StaticToken(token="from-os")


# -- malformed input: a ConfigurationError naming it, never a ValueError or AttributeError --


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (
            lambda: parse_orchestrator_url("http://[::1/a/b/orchestrator_"),
            "Orchestrator URL 'http://[::1/a/b/orchestrator_': not a valid URL (Invalid IPv6 URL)",
        ),
        (
            lambda: parse_orchestrator_url("http://127.0.0.1:99999/a/b/orchestrator_"),
            "not a valid URL (Port out of range 0-65535)",
        ),
        (
            lambda: Settings(url=CLOUD, credentials=cc(), identity_url="http://[::1"),
            "identity_url (ASYNC_ORCH_IDENTITY_URL) 'http://[::1': not a valid URL",
        ),
        (
            lambda: Settings.from_env(
                {"UIPATH_URL": CLOUD, "UIPATH_ACCESS_TOKEN": "t",
                 "ASYNC_ORCH_IDENTITY_URL": "http://[::1"}
            ),
            "ASYNC_ORCH_IDENTITY_URL",
        ),
        (
            # A bare host is completed with these two, which splits the URL first.
            lambda: Settings.from_env(
                {"UIPATH_URL": "https://[::1", "UIPATH_ORGANIZATION_NAME": "o",
                 "UIPATH_TENANT_NAME": "t", "UIPATH_ACCESS_TOKEN": "t"}
            ),
            "Orchestrator URL 'https://[::1': not a valid URL",
        ),
        (
            lambda: parse_orchestrator_url("http://\u00ebxample\u202e.com/a/b/orchestrator_"),
            "not a valid URL (Host 'ëxample\\u202e.com' cannot contain '\\u202e'",
        ),
        (
            lambda: Settings.from_env(
                {"UIPATH_URL": CLOUD, "UIPATH_ACCESS_TOKEN": "t",
                 "ASYNC_ORCH_IDENTITY_URL": "http://a\u202eb.com/token"}
            ),
            "ASYNC_ORCH_IDENTITY_URL) 'http://a\\u202eb.com/token': not a valid URL",
        ),
        (
            lambda: parse_orchestrator_url("https://orch.example.com/a/b/" + "x" * 100_000),
            "xxx'... (100,029 chars): unexpected path",
        ),
        (
            lambda: ClientCredentials(
                client_id="x",
                client_secret="y",
                scopes=("OR.Jobs", "OR.Folders.Read"),  # type: ignore[arg-type]
            ),
            "ClientCredentials.scopes must be one space-separated string such as "
            "'OR.Folders.Read OR.Execution.Read OR.Jobs', not tuple",
        ),
        (
            lambda: StaticToken(token=None),  # type: ignore[arg-type]
            "StaticToken.token must be a string, not NoneType",
        ),
        (
            lambda: Settings(url=None, credentials=cc()),  # type: ignore[arg-type]
            "Settings.url must be the Orchestrator URL as a string, not NoneType",
        ),
        (
            lambda: Settings(url=CLOUD, credentials=cc(), folder=7),  # type: ignore[arg-type]
            "Settings.folder must be a folder path or Key (a string), not int",
        ),
    ],
    ids=["ipv6", "port", "identity-url", "identity-env", "bare-host-env", "bidi-host",
         "bidi-identity-host", "long-url", "scopes-tuple",
         "token-none", "url-none", "folder-int"],
)  # fmt: skip
def test_malformed_values_raise_a_configuration_error_naming_them(
    build: object, words: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build()  # type: ignore[operator]
    assert words in str(caught.value)
    assert len(str(caught.value)) < 500  # a long value is cut short, not echoed whole


@pytest.mark.parametrize(
    "variable",
    ["UIPATH_CLIENT_SECRET", "UIPATH_CLIENT_ID", "ASYNC_ORCH_SCOPES", "UIPATH_FOLDER_PATH",
     "UIPATH_URL", "ASYNC_ORCH_PASSWORD"],
)  # fmt: skip
def test_a_byte_that_is_not_utf8_in_a_variable_is_named_without_the_value(
    variable: str,
) -> None:
    # os.environ keeps such a byte as a lone surrogate; sent, it was a UnicodeEncodeError.
    env = {**BASE_ENV, "UIPATH_CLIENT_ID": "id", "UIPATH_CLIENT_SECRET": "secret",
           "ASYNC_ORCH_USERNAME": "u", "ASYNC_ORCH_PASSWORD": "p"}  # fmt: skip
    env[variable] = "S3CRET\udcff"
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == (
        f"{variable} holds a byte that is not UTF-8 (0xff); set it as UTF-8 text"
    )
