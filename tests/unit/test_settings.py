"""Settings are read once (environment + config file) and each backend option is taken from a
flag, else its environment variable, else the config file, else its default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from kfnb.backends import BackendError, get_backend, open_backend
from kfnb.config import ConfigError
from kfnb.settings import Settings


def settings(tmp_path: Path, env: dict[str, str], config: dict[str, Any] | None) -> Settings:
    if config is not None:
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return Settings.load(env={"KFNB_HOME": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("backend", "option", "flag", "env", "file", "expected"),
    [
        # local
        ("local", "max_parallel", 3, {"KFNB_MAX_PARALLEL": "5"}, 7, 3),
        ("local", "max_parallel", None, {"KFNB_MAX_PARALLEL": "5"}, 7, 5),
        ("local", "max_parallel", None, {}, 7, 7),
        ("local", "max_parallel", None, {}, None, None),
        ("local", "preload", ("json",), {"KFNB_PRELOAD": "csv,re"}, ["os"], ("json",)),
        ("local", "preload", None, {"KFNB_PRELOAD": "csv, re"}, ["os"], ("csv", "re")),
        ("local", "preload", None, {}, ["os"], ("os",)),
        ("local", "cache", False, {"KFNB_CACHE": "yes"}, True, False),
        ("local", "cache", None, {"KFNB_CACHE": "off"}, True, False),
        ("local", "cache", None, {}, False, False),
        ("local", "cache", None, {}, None, True),
        ("local", "gpus", ["0"], {"KFNB_GPUS": "1,2"}, ["3"], ("0",)),
        ("local", "gpus", None, {"KFNB_GPUS": "1,2"}, ["3"], ("1", "2")),
        # kfp
        (
            "kfp",
            "host",
            "http://flag",
            {"KFNB_KFP_HOST": "http://env"},
            "http://file",
            "http://flag",
        ),
        ("kfp", "host", None, {"KFNB_KFP_HOST": "http://env"}, "http://file", "http://env"),
        ("kfp", "host", None, {"KF_PIPELINES_ENDPOINT": "http://sdk"}, "http://f", "http://sdk"),
        ("kfp", "host", None, {}, "http://file", "http://file"),
        ("kfp", "namespace", "erin", {"KFNB_KFP_NAMESPACE": "dave"}, "carol", "erin"),
        ("kfp", "namespace", None, {"KFNB_KFP_NAMESPACE": "dave"}, "carol", "dave"),
        ("kfp", "namespace", None, {}, "carol", "carol"),
        ("kfp", "poll_interval", None, {"KFNB_KFP_POLL_INTERVAL": "0.5"}, 2, 0.5),
        ("kfp", "poll_interval", None, {}, 2, 2.0),
    ],
)
def test_flag_beats_environment_beats_config_file(
    tmp_path: Path,
    backend: str,
    option: str,
    flag: Any,
    env: dict[str, str],
    file: Any,
    expected: Any,
) -> None:
    config = {backend: {option: file}} if file is not None else {}
    given = {option: flag} if flag is not None else {}
    opened = open_backend(backend, settings(tmp_path, env, config), given)
    value = getattr(opened.config, option)
    assert (tuple(value) if isinstance(value, list) else value) == expected


def test_the_config_file_location_and_home_come_from_the_environment(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("local: {max_parallel: 2}\n")
    loaded = Settings.load(env={"KFNB_HOME": str(tmp_path / "h"), "KFNB_CONFIG": str(elsewhere)})
    assert loaded.home == (tmp_path / "h").resolve()
    assert loaded.config_file == elsewhere
    assert open_backend("local", loaded).config.max_parallel == 2
    default = Settings.load(env={"KFNB_HOME": str(tmp_path)})
    assert default.config_file == tmp_path.resolve() / "config.yaml"
    assert default.sections == {}


def test_settings_are_a_snapshot_of_the_environment(tmp_path: Path) -> None:
    env = {"KFNB_HOME": str(tmp_path), "KFNB_MAX_PARALLEL": "4"}
    loaded = Settings.load(env=env)
    env["KFNB_MAX_PARALLEL"] = "9"  # changed after loading: not seen
    assert open_backend("local", loaded).config.max_parallel == 4


@pytest.mark.parametrize(
    ("backend", "given", "words"),
    [
        ("local", {"max_paralel": 2}, ["'max_paralel'", "did you mean 'max_parallel'"]),
        ("local", {"host": "http://x"}, ["backend 'local' has no option 'host'"]),
        ("kfp", {"hots": "http://x"}, ["'hots'", "did you mean 'host'"]),
    ],
)
def test_an_unknown_option_names_the_nearest_known_one(
    tmp_path: Path, backend: str, given: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(BackendError) as caught:
        open_backend(backend, settings(tmp_path, {}, None), given)
    for word in words:
        assert word in str(caught.value)
    assert caught.value.fix and "its options are" in caught.value.fix
    assert "Fix:" not in caught.value.message


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"local": {"max_paralel": 2}}, ["'max_paralel'", "section local", "'max_parallel'"]),
        ({"kfp": {"hots": "http://x"}}, ["'hots'", "section kfp", "'host'"]),
        ({"lokal": {"max_parallel": 2}}, ["unknown section 'lokal'", "did you mean 'local'"]),
        ({"local": "fast"}, ["section 'local' must be a mapping"]),
    ],
)
def test_the_config_file_refuses_what_it_does_not_know(
    tmp_path: Path, config: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        open_backend("local", settings(tmp_path, {}, config), {})
    for word in words:
        assert word in str(caught.value)
    assert caught.value.where == str(tmp_path / "config.yaml")


@pytest.mark.parametrize(
    ("env", "given", "words"),
    [
        (
            {"KFNB_MAX_PARALLEL": "many"},
            {},
            ["max_parallel", "environment variable KFNB_MAX_PARALLEL"],
        ),
        ({"KFNB_CACHE": "perhaps"}, {}, ["'cache' must be a bool"]),
        ({}, {"max_parallel": "2.5"}, ["'max_parallel' must be an integer"]),
        ({}, {"memory": float("nan")}, ["'memory' must be a float"]),
        ({}, {"preload": [1, 2]}, ["'preload' must be a list of strings"]),
    ],
)
def test_a_badly_typed_option_says_where_it_came_from(
    tmp_path: Path, env: dict[str, str], given: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(BackendError) as caught:
        open_backend("local", settings(tmp_path, env, None), given)
    for word in words:
        assert word in str(caught.value)


def test_options_are_typed_and_documented() -> None:
    local = {o.name: o for o in get_backend("local").options()}
    assert local["max_parallel"].type == "int" and local["max_parallel"].env == (
        "KFNB_MAX_PARALLEL",
    )
    assert local["preload"].type == "list" and local["cache"].type == "bool"
    assert all(o.help for o in local.values())
    kfp = {o.name: o for o in get_backend("kfp").options()}
    assert kfp["host"].env == ("KFNB_KFP_HOST", "KF_PIPELINES_ENDPOINT")
    assert "env" not in kfp  # the environment snapshot is no option
    assert kfp["token"].hidden
