"""One configuration path: each setting is a field of ``Settings`` (config.py), and its flag of
``xtracker serve``, its ``XTRACKER_*`` variable, its default and its help all come from that
field. These tests run the real ``serve`` and ``worker`` commands (Typer's runner, a real SQLite
file) with the web server and the worker loop replaced by a function that keeps the settings."""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from xtracker_server.cli import app
from xtracker_server.cli import serve as serve_module
from xtracker_server.config import Settings, env_var, flag, setting_info

ROOT = Path(__file__).resolve().parents[2]
FIELDS = fields(Settings)

#: Values (as text, and as Settings holds them) for the settings whose type alone gives no
#: valid value other than the default; the others are derived by _sample().
SAMPLES: dict[str, tuple[str, Any]] = {
    "admin_token": (TOKEN := secrets.token_hex(32), TOKEN),
    "metrics_token": ("m" * 24, "m" * 24),
    "sync": ("normal", "NORMAL"),  # in any case
    "log_level": ("DEBUG", "debug"),
    "trusted_proxies": ("10.0.0.0/8, 192.168.0.1", ("10.0.0.0/8", "192.168.0.1")),
}


def _sample(name: str, default: Any) -> tuple[str, Any]:
    """A valid value of the setting other than its default: (its text, its value)."""
    if name in SAMPLES:
        return SAMPLES[name]
    if isinstance(default, bool):
        return ("off" if default else "on"), not default
    if isinstance(default, (int, float)):
        return str(default + 1), default + 1
    value = f"{default or ''}x"
    return value, value


def _flags(name: str, text: str, value: Any) -> list[str]:
    if isinstance(value, bool):
        return [flag(name) if value else f"--no-{flag(name)[2:]}"]
    return [flag(name), text]


def _run(monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str]) -> Settings:
    """``xtracker <args>`` with only ``env`` of the XTRACKER_* variables; the settings that the
    server (or the worker) would have been started with."""
    started: list[Settings] = []
    monkeypatch.setattr(serve_module, "run_server", started.append)
    monkeypatch.setattr(serve_module, "run_worker", started.append)
    clean: dict[str, str | None] = {k: None for k in os.environ if k.startswith("XTRACKER_")}
    result = CliRunner().invoke(app, args, env={**clean, **env})
    assert result.exit_code == 0, result.output
    (settings,) = started
    return settings


def _serve_command() -> Any:
    root = typer.main.get_command(app)
    return root.get_command(root.make_context("xtracker", ["serve"]), "serve")  # type: ignore[attr-defined]


def test_every_setting_has_help_a_flag_and_a_variable() -> None:
    options = {p.name: p for p in _serve_command().params}
    for f in FIELDS:
        assert setting_info(f).help, f"{f.name}: give it setting(default, help) in config.py"
        option = options[f.name]
        assert flag(f.name) in option.opts
        assert option.envvar == env_var(f.name)
    assert set(options) == {f.name for f in FIELDS}


def test_serve_takes_each_setting_from_its_flag_its_variable_or_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "xtracker.db")
    samples = {f.name: _sample(f.name, f.default) for f in FIELDS if f.name != "db"}
    expected = Settings(db=db, **{name: value for name, (_, value) in samples.items()})
    assert all(getattr(expected, n) != getattr(Settings(), n) for n in samples)  # none a default

    assert _run(monkeypatch, ["serve", "--db", db], {}) == Settings(db=db)
    env = {env_var(name): text for name, (text, _) in samples.items()}
    assert _run(monkeypatch, ["serve"], {**env, "XTRACKER_DB": db}) == expected
    given = [arg for name, (text, value) in samples.items() for arg in _flags(name, text, value)]
    assert _run(monkeypatch, ["serve", "--db", db, *given], {}) == expected
    # the worker reads the same variables the same way (xtracker worker, destination test)
    assert Settings.from_env({**env, "XTRACKER_DB": db}) == expected


def test_a_flag_beats_its_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "xtracker.db")
    env = {"XTRACKER_CREDENTIAL_CACHE_S": "7", "XTRACKER_SYNC": "off"}
    settings = _run(monkeypatch, ["serve", "--db", db, "--credential-cache-s", "3"], env)
    assert (settings.credential_cache_s, settings.sync) == (3.0, "OFF")


def test_a_value_settings_refuses_stops_serve_with_its_message(tmp_path: Path) -> None:
    env = {k: None for k in os.environ if k.startswith("XTRACKER_")}
    result = CliRunner().invoke(
        app, ["serve", "--db", str(tmp_path / "x.db"), "--log-level", "loud"], env=env
    )
    assert result.exit_code == 2
    assert "XTRACKER_LOG_LEVEL must be one of critical, error, warning, info" in result.output
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_worker_has_the_flags_of_what_it_reads_and_the_rest_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "xtracker.db")
    _run(monkeypatch, ["serve", "--db", db], {})  # makes the database
    env = {"XTRACKER_RETRY_CAP_S": "9", "XTRACKER_CLICK_WINDOW_S": "100"}
    args = ["worker", "--db", db, "--poll-s", "0.5", "--retry-base-s", "7"]
    settings = _run(monkeypatch, args, env)
    assert settings == Settings(
        db=db, worker_poll_s=0.5, retry_base_s=7.0, retry_cap_s=9.0, click_window_s=100.0
    )
    result = CliRunner().invoke(app, ["worker", "--db", db, "--click-window-s", "5"])
    assert result.exit_code == 2  # not a worker's flag: it has no landing pages
    assert "No such option" in result.output


def _doc_default(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if default == ():
        return "none"
    return str(default)


def test_operations_md_lists_every_setting_with_its_flag_and_default() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    rows = {
        m.group(1): (m.group(2), m.group(3).strip("` "))
        for m in re.finditer(r"^\| `(XTRACKER_\w+)` \| (.+?) \| (.+?) \| .+\|$", doc, re.M)
    }
    for f in FIELDS:
        assert env_var(f.name) in rows, f"docs/operations.md: no row for {env_var(f.name)}"
        flags, default = rows.pop(env_var(f.name))
        assert f"`{flag(f.name)}`" in flags, f.name
        if f.default is not None:  # None: the doc says what happens instead
            assert default == _doc_default(f.default), f.name
    assert rows == {}, "rows of docs/operations.md that are no setting"


def test_the_version_is_written_once_in_pyproject_toml() -> None:
    import xtracker_client
    from xtracker_server.version import VERSION

    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.search(r'^version = "([^"]+)"$', pyproject, re.M)
    assert found, "pyproject.toml has no version"
    assert xtracker_client.__version__ == VERSION == found.group(1), "reinstall: pip install -e ."
    literal = f'"{found.group(1)}"'
    sources = [
        *ROOT.glob("xtracker_client/**/*.py"),
        *ROOT.glob("xtracker_server/**/*.py"),
        *ROOT.glob("xtracker_wire/**/*.py"),
    ]
    assert [p.name for p in sources if literal in p.read_text(encoding="utf-8")] == []
