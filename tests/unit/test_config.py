"""Settings from defaults, USERPROPS_* variables and flags, in that order of precedence."""

from __future__ import annotations

import pytest

from userprops.config import Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database == "sqlite:///userprops.db"
    assert settings.limits.max_body_bytes == 1024 * 1024


def test_environment_overrides_defaults_and_flags_override_the_environment() -> None:
    env = {"USERPROPS_PORT": "9001", "USERPROPS_BODY_TIMEOUT": "2.5", "USERPROPS_HOST": "::1"}
    settings = Settings.from_env(env, host="10.1.2.3", port=None)
    assert (settings.port, settings.body_timeout, settings.host) == (9001, 2.5, "10.1.2.3")


def test_empty_variables_are_ignored() -> None:
    assert Settings.from_env({"USERPROPS_PORT": ""}).port == 8000


def test_a_bad_number_names_the_variable() -> None:
    with pytest.raises(ValueError, match="USERPROPS_MAX_PROPERTIES: not a number"):
        Settings.from_env({"USERPROPS_MAX_PROPERTIES": "many"})


def test_limits_follow_the_settings() -> None:
    limits = Settings(max_list_length=3, max_string_length=7).limits
    assert (limits.max_list_length, limits.max_string_length) == (3, 7)
