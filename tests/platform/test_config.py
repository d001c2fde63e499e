from __future__ import annotations

from pathlib import Path

import pytest

from photonpipe.errors import ConfigError
from photonpipe.platform.config import load_settings


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_and_sources() -> None:
    settings = load_settings(env={})
    assert settings["archive.root"] == Path.cwd() / "photonpipe-archive"
    assert settings.source("archive.root") == "default"
    assert settings["executor.backend"] == "local"
    assert settings["archive.file_mode"] == 0o644
    assert settings.database_url == f"sqlite:///{Path.cwd() / 'photonpipe-archive'}/photonpipe.db"


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    config = write(
        tmp_path / "photonpipe.toml",
        '[archive]\nroot = "data/archive"\nfile_mode = 0o664\n'
        '[executor]\nworkers = 3\nbackend = "dask"\n[logging]\nlevel = "WARNING"\n',
    )
    env = {"PHOTONPIPE_EXECUTOR_WORKERS": "5", "PHOTONPIPE_LOGGING_LEVEL": "error"}
    settings = load_settings(config, env=env, overrides={"executor.workers": 7})
    # File values; relative paths in a file are relative to the file's directory.
    assert settings["archive.root"] == tmp_path / "data" / "archive"
    assert settings.source("archive.root") == str(config)
    assert settings["archive.file_mode"] == 0o664
    assert settings["executor.backend"] == "dask"
    # Environment beats file (and choices are case-insensitive for upper-case choices).
    assert settings["logging.level"] == "ERROR"
    assert settings.source("logging.level") == "env PHOTONPIPE_LOGGING_LEVEL"
    # Command line beats environment.
    assert settings["executor.workers"] == 7
    assert settings.source("executor.workers") == "command line"


def test_config_found_in_cwd_and_via_env(tmp_path: Path) -> None:
    write(Path.cwd() / "photonpipe.toml", "[executor]\nmax_tries = 5\n")
    assert load_settings(env={})["executor.max_tries"] == 5
    other = write(tmp_path / "other.toml", "[executor]\nmax_tries = 9\n")
    assert load_settings(env={"PHOTONPIPE_CONFIG": str(other)})["executor.max_tries"] == 9


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[archive]\nrot = 'x'\n", "unknown setting 'archive.rot' (did you mean 'root'?)"),
        ("[archiv]\nroot = 'x'\n", "unknown settings section 'archiv' (did you mean 'archive'?)"),
        ("root = 'x'\n", "top-level key 'root' must be a [section] table"),
        ("[executor]\nworkers = 'two'\n", "setting 'executor.workers' must be an integer"),
        ("[executor]\nworkers = -1\n", "setting 'executor.workers' must be at least 0"),
        ("[executor]\nbackend = 'spark'\n", "must be one of local, dask"),
        ("[archive]\nfile_mode = '9999'\n", "octal permission bits"),
        ("[database]\necho = 'maybe'\n", "must be true or false"),
        ("[archive]\nroot = \n", "not valid TOML"),
    ],
)
def test_bad_settings_file_names_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    config = write(tmp_path / "bad.toml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(config, env={})
    message = str(info.value)
    assert message.startswith(str(config) + ": ")
    assert expected in message
    assert info.value.exit_code == 2


def test_toml_syntax_error_reports_line(tmp_path: Path) -> None:
    config = write(tmp_path / "bad.toml", "[archive]\nfile_mode = 0o644\nroot = = 'x'\n")
    with pytest.raises(ConfigError, match=r"line 3"):
        load_settings(config, env={})


def test_unknown_environment_variable_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env={"PHOTONPIPE_ARCHIVE_ROTO": "/x"})
    assert "PHOTONPIPE_ARCHIVE_ROTO" in str(info.value)
    assert "did you mean 'root'" in str(info.value)


def test_reserved_environment_variables_are_not_settings() -> None:
    env = {"PHOTONPIPE_TEST_POSTGRES_URL": "postgresql://x", "OTHER": "1"}
    assert load_settings(env=env)["database.url"] is None


def test_environment_value_types() -> None:
    env = {
        "PHOTONPIPE_DATABASE_ECHO": "yes",
        "PHOTONPIPE_ARCHIVE_DIR_MODE": "2775",
        "PHOTONPIPE_DATABASE_BUSY_TIMEOUT": "2.5",
        "PHOTONPIPE_ARCHIVE_GROUP": "",
    }
    settings = load_settings(env=env)
    assert settings["database.echo"] is True
    assert settings["archive.dir_mode"] == 0o2775
    assert settings["database.busy_timeout"] == 2.5
    assert settings["archive.group"] is None


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--config: settings file .*nope.toml.* does not exist"):
        load_settings(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="PHOTONPIPE_CONFIG"):
        load_settings(env={"PHOTONPIPE_CONFIG": str(tmp_path / "nope.toml")})


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting 'executor\.worker'"):
        load_settings(env={}, overrides={"executor.worker": 2})


def test_section_view_and_iteration() -> None:
    settings = load_settings(env={})
    archive = settings.section("archive")
    assert set(archive) == {"root", "file_mode", "dir_mode", "group"}
    names = [s.name for s in settings]
    assert names == sorted(names)
    assert "executor.start_method" in names
