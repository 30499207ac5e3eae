"""The config file of profiles as `load_settings` reads it: any file there is parsed,
the default profile is found by key, and every mistake is named."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cli_harness import write_file

from async_orch._cli.common import load_settings
from async_orch._errors import ConfigurationError

URL = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
ENV = {"UIPATH_CLIENT_ID": "id", "UIPATH_CLIENT_SECRET": "secret"}


def _args(config: Path | None = None, profile: str | None = None) -> argparse.Namespace:
    return argparse.Namespace(config=config, profile=profile, url=None)


def _config(tmp_path: Path, content: str | bytes, name: str = "config.toml") -> Path:
    return write_file(tmp_path, name, content)


@pytest.mark.parametrize(
    "content",
    [
        f'[profiles.default]\nurl = "{URL}"\n',
        f'[profiles]\ndefault = {{ url = "{URL}" }}\n',
        f'profiles = {{ default = {{ url = "{URL}" }} }}\n',
        f'[profiles.prod]\nurl = "https://orch.example.com"\n[profiles.default]\nurl = "{URL}"\n',
    ],
    ids=["table", "inline-table", "top-level-inline", "second-table"],
)
def test_the_default_profile_is_found_however_the_toml_spells_it(
    tmp_path: Path, content: str
) -> None:
    path = _config(tmp_path, content)
    assert load_settings(_args(config=path), environ=ENV).url == URL


def test_a_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = _config(tmp_path, f'\ufeff[profiles.default]\nurl = "{URL}"\n'.encode())
    assert load_settings(_args(config=path), environ=ENV).url == URL


def test_a_file_without_a_default_profile_adds_nothing(tmp_path: Path) -> None:
    path = _config(tmp_path, '[profiles.prod]\nurl = "https://orch.example.com"\n')
    settings = load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL})
    assert settings.url == URL


@pytest.mark.parametrize(
    ("content", "profile", "message"),
    [
        ("[profiles\n", None,
         "config file {path} is not valid TOML: Expected ']' at the end of a table declaration "
         "(at line 1, column 10)"),
        ("[profiles\n", "x", "config file {path} is not valid TOML"),
        ("profiles = 3\n", None,
         "config file {path}: 'profiles' must be a table of [profiles.NAME] tables, not int"),
        ("[profiles]\nx = 3\n", "x",
         "config file {path}: [profiles.x] must be a table of settings (url = ..., "
         "client_id = ...), not int"),
        ("[profiles]\ndefault = 'prod'\n", None, "[profiles.default] must be a table"),
        ("[profiles.default]\nurll = 'x'\n", None, "unknown key 'urll'"),
        ('[profiles.a]\nurl = "x"\n', "b",
         "no profile 'b' in config file {path} (profiles there: a)"),
        ('[profiles.default]\ntenant = "Comptabilité"\n'.encode("cp1252"), None,
         "config file {path} is not UTF-8 text (byte 0xe9 on line 2); save it as UTF-8"),
    ],
    ids=["bad-toml", "bad-toml-profile", "profiles-int", "profile-int", "default-str",
         "unknown-key", "no-such-profile", "cp1252"],
)  # fmt: skip
def test_a_broken_config_file_is_an_error_naming_it(
    tmp_path: Path, content: str | bytes, profile: str | None, message: str
) -> None:
    path = _config(tmp_path, content)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_args(config=path, profile=profile), environ={**ENV, "UIPATH_URL": URL})
    assert message.replace("{path}", str(path)) in str(caught.value)


def test_the_default_config_file_is_checked_too(tmp_path: Path) -> None:
    # Not named by --config, yet found in its usual place: broken, it is not ignored.
    path = _config(tmp_path, "oops\n")
    environ = {**ENV, "UIPATH_URL": URL, "ASYNC_ORCH_CONFIG": str(path)}
    with pytest.raises(ConfigurationError, match=f"config file {path} is not valid TOML"):
        load_settings(_args(), environ=environ)
    path.unlink()  # named, yet missing: refused as --config is
    with pytest.raises(ConfigurationError, match=r"\(ASYNC_ORCH_CONFIG\) not found"):
        load_settings(_args(), environ=environ)
    environ.pop("ASYNC_ORCH_CONFIG")  # the usual place, empty: fine
    assert load_settings(_args(), environ=environ).url == URL


def test_a_missing_config_file_is_an_error_only_when_asked_for(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    environ = {**ENV, "UIPATH_URL": URL}
    with pytest.raises(ConfigurationError, match=r"nope.toml \(--config\) not found"):
        load_settings(_args(config=missing), environ=environ)
    with pytest.raises(ConfigurationError, match=r"not found \(needed for --profile prod\)"):
        load_settings(_args(config=missing, profile="prod"), environ=environ)


# A secret in a profile, written where it does not belong: the message names the key
# and the type, never the value (it would land in a terminal, a CI log, a ticket).
SECRET_MISTAKES = [
    ('client_secret = ["S3CRET"]', "client_secret must be a string or a number, not list"),
    ('client_secret = { v = "S3CRET" }', "client_secret must be a string or a number, not dict"),
    ('password = ["S3CRET"]', "password must be a string or a number, not list"),
    ('access_token = ["S3CRET"]', "access_token must be a string or a number, not list"),
    ('refresh_token = ["S3CRET"]', "refresh_token must be a string or a number, not list"),
    ('client_secret_env = "S3CRET"',
     "client_secret_env: its value is not the name of a set environment variable (the "
     "value is not shown"),
    ('password_env = "S3CRET"', "password_env: its value is not the name of a set"),
    ('access_token_env = "S3CRET"', "access_token_env: its value is not the name of a set"),
    ('refresh_token_env = "S3CRET"', "refresh_token_env: its value is not the name of a set"),
]  # fmt: skip


@pytest.mark.parametrize(("line", "message"), SECRET_MISTAKES)
def test_a_misplaced_secret_is_never_shown(tmp_path: Path, line: str, message: str) -> None:
    path = _config(tmp_path, f"[profiles.default]\n{line}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL})
    assert message in str(caught.value)
    assert "S3CRET" not in str(caught.value)


def test_an_env_key_that_is_not_a_string_says_it_must_name_a_variable(tmp_path: Path) -> None:
    path = _config(tmp_path, "[profiles.default]\nclient_secret_env = 5\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL})
    assert "client_secret_env must be the name of an environment variable (a string), not int" in (
        str(caught.value)
    )


def test_an_unset_variable_of_an_ordinary_key_is_named(tmp_path: Path) -> None:
    path = _config(tmp_path, '[profiles.default]\nclient_id_env = "ACME_ID"\n')
    with pytest.raises(ConfigurationError, match="client_id_env = 'ACME_ID': that environment"):
        load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('timeout = "x"', "[profiles.default] timeout = 'x' is not a number of seconds"),
        ("timeout = nan", "[profiles.default] timeout = 'nan' must be a finite number of "
         "seconds, more than 0"),
        ("timeout = 1e400", "[profiles.default] timeout = 'inf' must be a finite number"),
        ("timeout = -5", "[profiles.default] timeout = '-5' must be a finite number"),
        ("connect_timeout = 0", "[profiles.default] connect_timeout = '0' must be a finite"),
        ("retry_attempts = 0", "[profiles.default] retry_attempts = '0' must be a whole number "
         "of at least 1"),
        ('timeout_env = "T"', "[profiles.default] timeout_env = 'nan' must be a finite number"),
    ],
)  # fmt: skip
def test_a_bad_number_in_a_profile_names_the_profile_key(
    tmp_path: Path, line: str, message: str
) -> None:
    path = _config(tmp_path, f"[profiles.default]\n{line}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL, "T": "nan"})
    assert message in str(caught.value)
    assert "ASYNC_ORCH" not in str(caught.value)  # not the variable the key stands for
    assert "RetryPolicy" not in str(caught.value)


def test_a_variable_named_by_a_profile_with_a_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = _config(tmp_path, '[profiles.default]\nclient_secret_env = "ACME_SECRET"\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings(
            _args(config=path), environ={**ENV, "UIPATH_URL": URL, "ACME_SECRET": "S3\udcff"}
        )
    assert "client_secret_env: variable 'ACME_SECRET' holds a byte that is not UTF-8 (0xff)" in (
        str(caught.value)
    )
    assert "S3" not in str(caught.value).replace("ACME_SECRET", "")


def test_a_config_file_nested_too_deep_is_named(tmp_path: Path) -> None:
    # tomllib recurses: 5,000 nested arrays were a RecursionError traceback.
    path = _config(tmp_path, "x = " + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(ConfigurationError, match=f"config file {path}: nesting too deep"):
        load_settings(_args(config=path), environ={**ENV, "UIPATH_URL": URL})
