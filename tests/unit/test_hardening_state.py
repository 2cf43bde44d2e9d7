"""The state directory and the admin key: private to the user who runs the gateway, or refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from gateway.auth import admin_key, read_admin_key
from gateway.config import ConfigError, state_dir

GOOD = "sk-llmgw-" + "k" * 40
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LLMGW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LLMGW_ADMIN_KEY", raising=False)
    return tmp_path / "home"


def test_the_state_directory_is_created_private(home: Path) -> None:
    assert state_dir() == home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


def test_a_state_directory_others_may_write_is_refused(home: Path) -> None:
    home.mkdir()
    home.chmod(0o777)
    with pytest.raises(ConfigError, match="chmod 700"):
        state_dir()


def test_a_generated_key_is_saved_0600_and_read_back(home: Path) -> None:
    made = admin_key()
    assert made is not None and made.generated is not None and made.path is not None
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600
    again = admin_key()
    assert again is not None and again.hash == made.hash
    assert read_admin_key() == made.generated


@pytest.mark.parametrize("mode", [0o666, 0o644, 0o620])
def test_a_key_file_open_to_others_is_refused_with_the_fix(home: Path, mode: int) -> None:
    home.mkdir(mode=0o700)
    path = home / "admin.key"
    path.write_text(GOOD + "\n")
    path.chmod(mode)
    for read in (admin_key, read_admin_key):
        with pytest.raises(ConfigError, match=rf"{path}.*chmod 600"):
            read()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a file to another user")
def test_a_key_file_another_user_owns_is_refused(home: Path) -> None:
    home.mkdir(mode=0o700)
    path = home / "admin.key"
    path.write_text(GOOD + "\n")
    path.chmod(0o600)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="another user"):
        admin_key()


def test_short_admin_keys_are_refused(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMGW_ADMIN_KEY", "short-key")
    with pytest.raises(ConfigError, match=r"LLMGW_ADMIN_KEY.*at least 32"):
        admin_key()
    monkeypatch.delenv("LLMGW_ADMIN_KEY")
    home.mkdir(mode=0o700)
    path = home / "admin.key"
    path.write_text("hunter2\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="at least 32"):
        admin_key()


def test_deploy_files_keep_state_out_of_shared_directories() -> None:
    serve = yaml.safe_load((ROOT / "serve_config.yaml").read_text())
    for app in serve["applications"]:
        env = (app.get("runtime_env") or {}).get("env_vars") or {}
        assert not str(env.get("LLMGW_HOME", "")).startswith("/tmp")
    for path in (ROOT / "cluster").iterdir():
        assert "/tmp/llmgw" not in path.read_text(), path
