"""Settings: environment variables > INI file ([tmlib] in TMAPS_CONFIG_FILE) > defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tmlib.config import ENV_VARS, Settings, load_settings
from tmlib.errors import ConfigError, UserError


@pytest.fixture(autouse=True)
def _fake_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``~`` is a temporary directory, so no real ~/.tmaps is ever read."""
    home = tmp_path / "userhome"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def write_ini(path: Path, **values: str) -> Path:
    lines = ["[tmlib]"] + [f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def all_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_defaults_without_env_and_file(tmp_path: Path, _fake_home: Path) -> None:
    settings = load_settings(environ={"TMAPS_CONFIG_FILE": str(tmp_path / "missing.cfg")})
    home = _fake_home / ".tmaps"
    assert isinstance(settings, Settings)
    assert settings.home == home
    assert settings.db_url == f"sqlite:///{home}/tissuemaps.db"
    assert settings.storage_home == home / "experiments"
    assert settings.backend == "local"
    assert settings.cores == all_cores()
    assert settings.is_sqlite is True
    assert settings.config_file == tmp_path / "missing.cfg"


def test_default_config_file_is_in_home(_fake_home: Path) -> None:
    settings = load_settings(environ={})
    assert settings.config_file == _fake_home / ".tmaps" / "tissuemaps.cfg"
    assert settings.home == _fake_home / ".tmaps"


def test_default_config_file_is_read(_fake_home: Path) -> None:
    (_fake_home / ".tmaps").mkdir()
    write_ini(_fake_home / ".tmaps" / "tissuemaps.cfg", backend="sge", cores="3")
    settings = load_settings(environ={})
    assert (settings.backend, settings.cores) == ("sge", 3)


def test_default_db_url_follows_home(tmp_path: Path) -> None:
    home = tmp_path / "somewhere"
    settings = load_settings(
        environ={"TMAPS_HOME": str(home), "TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg")}
    )
    assert settings.home == home
    assert settings.db_url == f"sqlite:///{home}/tissuemaps.db"
    assert settings.storage_home == home / "experiments"


def test_home_from_ini_moves_derived_defaults(tmp_path: Path) -> None:
    home = tmp_path / "ini-home"
    cfg = write_ini(tmp_path / "t.cfg", home=str(home))
    settings = load_settings(environ={"TMAPS_CONFIG_FILE": str(cfg)})
    assert settings.home == home
    assert settings.db_url == f"sqlite:///{home}/tissuemaps.db"
    assert settings.storage_home == home / "experiments"


def test_tilde_in_home_is_expanded(tmp_path: Path, _fake_home: Path) -> None:
    settings = load_settings(
        environ={"TMAPS_HOME": "~/data", "TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg")}
    )
    assert settings.home == _fake_home / "data"
    assert settings.db_url == f"sqlite:///{_fake_home}/data/tissuemaps.db"


# setting -> (INI value, env value, expected from the INI, expected from the env)
_CASES = {
    "home": ("/ini/home", "/env/home", Path("/ini/home"), Path("/env/home")),
    "db_url": (
        "postgresql://ini@db:5432/ini",
        "postgresql://env@db:5432/env",
        "postgresql://ini@db:5432/ini",
        "postgresql://env@db:5432/env",
    ),
    "storage_home": ("/ini/storage", "/env/storage", Path("/ini/storage"), Path("/env/storage")),
    "backend": ("slurm", "sge", "slurm", "sge"),
    "cores": ("37", "41", 37, 41),
}


@pytest.mark.parametrize("setting", sorted(_CASES))
def test_env_beats_ini_beats_default(setting: str, tmp_path: Path) -> None:
    ini_value, env_value, ini_expected, env_expected = _CASES[setting]
    base = {"TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg")}
    default = getattr(load_settings(environ=base), setting)
    assert default not in (ini_expected, env_expected)

    cfg = write_ini(tmp_path / "t.cfg", **{setting: ini_value})
    with_file = {"TMAPS_CONFIG_FILE": str(cfg)}
    assert getattr(load_settings(environ=with_file), setting) == ini_expected

    with_env = {**with_file, ENV_VARS[setting]: env_value}
    assert getattr(load_settings(environ=with_env), setting) == env_expected


def test_ini_and_env_mix_per_setting(tmp_path: Path) -> None:
    cfg = write_ini(tmp_path / "t.cfg", db_url="postgresql://ini@h/db", backend="slurm", cores="2")
    settings = load_settings(
        environ={"TMAPS_CONFIG_FILE": str(cfg), "TMAPS_BACKEND": "local", "TMAPS_HOME": "/e/h"}
    )
    assert settings.db_url == "postgresql://ini@h/db"
    assert settings.is_sqlite is False
    assert settings.backend == "local"
    assert settings.cores == 2
    assert settings.home == Path("/e/h")
    assert settings.storage_home == Path("/e/h/experiments")


def test_other_ini_sections_are_ignored(tmp_path: Path) -> None:
    cfg = tmp_path / "t.cfg"
    cfg.write_text("[other]\nbackend = slurm\ncores = 7\n")
    settings = load_settings(environ={"TMAPS_CONFIG_FILE": str(cfg)})
    assert settings.backend == "local"
    assert settings.cores == all_cores()


def test_backend_is_case_insensitive(tmp_path: Path) -> None:
    base = {"TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg")}
    assert load_settings(environ={**base, "TMAPS_BACKEND": "SLURM"}).backend == "slurm"


@pytest.mark.parametrize("backend", ["pbs", "gc3pie", "local2"])
def test_invalid_backend_from_env_raises(backend: str, tmp_path: Path) -> None:
    env = {"TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg"), "TMAPS_BACKEND": backend}
    with pytest.raises(ConfigError, match=backend) as info:
        load_settings(environ=env)
    assert isinstance(info.value, UserError)


def test_invalid_backend_from_ini_raises(tmp_path: Path) -> None:
    cfg = write_ini(tmp_path / "t.cfg", backend="condor")
    with pytest.raises(ConfigError, match="condor"):
        load_settings(environ={"TMAPS_CONFIG_FILE": str(cfg)})


@pytest.mark.parametrize("cores", ["0", "-2", "many", "2.5"])
def test_invalid_cores_raise(cores: str, tmp_path: Path) -> None:
    env = {"TMAPS_CONFIG_FILE": str(tmp_path / "none.cfg"), "TMAPS_CORES": cores}
    with pytest.raises(ConfigError, match="TMAPS_CORES"):
        load_settings(environ=env)


def test_invalid_cores_from_ini_raise(tmp_path: Path) -> None:
    cfg = write_ini(tmp_path / "t.cfg", cores="zero")
    with pytest.raises(ConfigError, match="zero"):
        load_settings(environ={"TMAPS_CONFIG_FILE": str(cfg)})


def test_valid_env_overrides_invalid_ini(tmp_path: Path) -> None:
    cfg = write_ini(tmp_path / "t.cfg", backend="condor", cores="none")
    settings = load_settings(
        environ={"TMAPS_CONFIG_FILE": str(cfg), "TMAPS_BACKEND": "sge", "TMAPS_CORES": "4"}
    )
    assert (settings.backend, settings.cores) == ("sge", 4)


def test_unparsable_ini_raises_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "t.cfg"
    cfg.write_text("backend = slurm\n")  # no section header
    with pytest.raises(ConfigError, match=str(cfg)):
        load_settings(environ={"TMAPS_CONFIG_FILE": str(cfg)})


def test_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMAPS_CONFIG_FILE", str(tmp_path / "none.cfg"))
    monkeypatch.setenv("TMAPS_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("TMAPS_CORES", "6")
    monkeypatch.delenv("TMAPS_DB_URL", raising=False)
    monkeypatch.delenv("TMAPS_BACKEND", raising=False)
    monkeypatch.delenv("TMAPS_STORAGE_HOME", raising=False)
    settings = load_settings()
    assert settings.home == tmp_path / "h"
    assert settings.cores == 6
    assert settings.db_url == f"sqlite:///{tmp_path / 'h'}/tissuemaps.db"
