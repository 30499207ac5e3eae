"""Named connection profiles from a TOML file (pure: the caller reads files and env).

A profile is a table under ``[profiles.NAME]``; its keys stand for the
environment variables :meth:`Settings.from_env` reads, so one code path builds
settings from both::

    # ~/.config/async-orch/config.toml
    [profiles.default]
    url = "https://cloud.uipath.com/acme/DefaultTenant/orchestrator_"
    client_id = "8d5e..."
    client_secret_env = "ACME_ORCH_SECRET"   # read the secret from this variable
    folder = "Finance/Invoices"

Any key may instead end in ``_env`` to name the variable holding its value, so
secrets need not be written in the file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from async_orch._config import setting_problem, undecodable_byte
from async_orch._errors import ConfigurationError
from async_orch._jsonvalues import shown

__all__ = [
    "PROFILE_KEYS",
    "chosen_profile",
    "default_config_path",
    "merge_environment",
    "profile_environment",
]

#: Keys whose values are secrets: never echoed in a message, only their type.
SECRET_KEYS = frozenset({"client_secret", "password", "access_token", "refresh_token"})

#: Profile key -> the environment variable it stands for.
PROFILE_KEYS: dict[str, str] = {
    "url": "UIPATH_URL",
    "organization": "UIPATH_ORGANIZATION_NAME",
    "tenant": "UIPATH_TENANT_NAME",
    "client_id": "UIPATH_CLIENT_ID",
    "client_secret": "UIPATH_CLIENT_SECRET",
    "access_token": "UIPATH_ACCESS_TOKEN",
    "folder": "UIPATH_FOLDER_PATH",
    "folder_key": "UIPATH_FOLDER_KEY",
    "scopes": "ASYNC_ORCH_SCOPES",
    "refresh_token": "ASYNC_ORCH_REFRESH_TOKEN",
    "username": "ASYNC_ORCH_USERNAME",
    "password": "ASYNC_ORCH_PASSWORD",
    "identity_url": "ASYNC_ORCH_IDENTITY_URL",
    "deployment": "ASYNC_ORCH_DEPLOYMENT",
    "timeout": "ASYNC_ORCH_TIMEOUT",
    "connect_timeout": "ASYNC_ORCH_CONNECT_TIMEOUT",
    "retry_attempts": "ASYNC_ORCH_RETRY_ATTEMPTS",
    "max_connections": "ASYNC_ORCH_MAX_CONNECTIONS",
}


def default_config_path(environ: Mapping[str, str], home: Path) -> Path:
    """$ASYNC_ORCH_CONFIG, else $XDG_CONFIG_HOME/async-orch/config.toml (~/.config)."""
    if environ.get("ASYNC_ORCH_CONFIG"):
        return Path(environ["ASYNC_ORCH_CONFIG"])
    base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    return base / "async-orch" / "config.toml"


def profile_environment(
    text: str, name: str, *, environ: Mapping[str, str], where: str
) -> dict[str, str]:
    """The environment variables profile ``name`` of a config file stands for.

    Raises:
        ConfigurationError: bad TOML, no such profile, an unknown key, or a
            ``*_env`` key naming an unset variable.
    """
    return _profile_values(_profiles(text, where=where), name, environ=environ, where=where)


def chosen_profile(
    text: str, name: str | None, *, environ: Mapping[str, str], where: str
) -> dict[str, str]:
    """Like :func:`profile_environment`, for the profile a run uses: ``name`` if
    given, else ``default`` if the file has one, else none (an empty dict).

    The file is parsed either way, so a broken config file is reported even
    when no profile is asked for.
    """
    profiles = _profiles(text, where=where)
    if name is None:
        if "default" not in profiles:
            return {}
        name = "default"
    return _profile_values(profiles, name, environ=environ, where=where)


def _profiles(text: str, *, where: str) -> dict[str, Any]:
    """The ``[profiles]`` table of a config file (empty when it has none)."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"{where} is not valid TOML: {exc}") from exc
    except RecursionError:  # tomllib recurses into nested arrays and inline tables
        raise ConfigurationError(
            f"{where}: nesting too deep (arrays or tables inside one another); a config "
            "file needs only [profiles.NAME] tables of plain values"
        ) from None
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigurationError(
            f"{where}: 'profiles' must be a table of [profiles.NAME] tables, "
            f"not {type(profiles).__name__}"
        )
    return profiles


def _profile_values(
    profiles: dict[str, Any], name: str, *, environ: Mapping[str, str], where: str
) -> dict[str, str]:
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigurationError(
            f"no profile {name!r} in {where} (profiles there: {known}); "
            f"add a [profiles.{name}] table or pick another with --profile"
        )
    profile = profiles[name]
    if not isinstance(profile, dict):
        raise ConfigurationError(
            f"{where}: [profiles.{name}] must be a table of settings (url = ..., "
            f"client_id = ...), not {type(profile).__name__}"
        )
    values: dict[str, str] = {}
    for key, value in profile.items():
        variable = _variable_of(key, where=where, profile=name)
        if key.endswith("_env"):
            text = _from_variable(value, key=key, where=where, profile=name, environ=environ)
        else:
            text = _text(value, key=key, where=where, profile=name)
        # Checked here, so the message names the profile's key, not the variable.
        if (problem := setting_problem(variable, text.strip())) is not None:
            raise ConfigurationError(f"{where} [profiles.{name}] {key} = {shown(text)} {problem}")
        values[variable] = text
    return values


def merge_environment(
    environ: Mapping[str, str], profile: Mapping[str, str], *, profile_wins: bool
) -> dict[str, str]:
    """Environment and profile in one mapping.

    A profile chosen by name (``--profile``, ``ASYNC_ORCH_PROFILE``) wins over the
    environment; the implicit ``default`` profile only fills what it leaves unset.
    """
    # The folder is one setting with two spellings (path, Key): the side that wins
    # gives it whole, so a path from one side never meets a Key from the other.
    winner, loser = (profile, dict(environ)) if profile_wins else (_set(environ), dict(profile))
    if any(_set(winner).get(name) for name in _FOLDER_VARIABLES):
        for name in _FOLDER_VARIABLES:
            loser.pop(name, None)
    return {**loser, **winner}


_FOLDER_VARIABLES = ("UIPATH_FOLDER_PATH", "UIPATH_FOLDER_KEY")


def _set(values: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``values`` that are set (not empty or blank)."""
    return {k: v for k, v in values.items() if v.strip()}


def _variable_of(key: str, *, where: str, profile: str) -> str:
    base = key.removesuffix("_env")
    if base not in PROFILE_KEYS:
        raise ConfigurationError(
            f"{where} [profiles.{profile}]: unknown key {key!r}; "
            f"known keys: {', '.join(PROFILE_KEYS)} (any of them may end in _env)"
        )
    return PROFILE_KEYS[base]


def _from_variable(
    value: Any, *, key: str, where: str, profile: str, environ: Mapping[str, str]
) -> str:
    """The value of the variable a ``*_env`` key names."""
    if not isinstance(value, str):
        raise ConfigurationError(
            f"{where} [profiles.{profile}] {key} must be the name of an environment "
            f"variable (a string), not {type(value).__name__}"
        )
    found = environ.get(value)
    if found:
        byte = undecodable_byte(found)
        if byte is not None:  # not shown: it may be a secret
            raise ConfigurationError(
                f"{where} [profiles.{profile}] {key}: variable {shown(value)} holds a byte that "
                f"is not UTF-8 (0x{byte:02x}); set it as UTF-8 text"
            )
        return found
    if key.removesuffix("_env") in SECRET_KEYS:
        # Not shown: a secret pasted here by mistake would end up in a terminal or a log.
        raise ConfigurationError(
            f"{where} [profiles.{profile}] {key}: its value is not the name of a set "
            "environment variable (the value is not shown, in case it is the secret "
            "itself); write the variable's name there and set that variable"
        )
    raise ConfigurationError(
        f"{where} [profiles.{profile}] {key} = {shown(value)}: that environment variable is not set"
    )


def _text(value: Any, *, key: str, where: str, profile: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        what = type(value).__name__ if key in SECRET_KEYS else shown(repr(value), quote=False)
        raise ConfigurationError(
            f"{where} [profiles.{profile}] {key} must be a string or a number, not {what}"
        )
    return str(value)
