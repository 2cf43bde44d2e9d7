"""API keys: how they are made, stored (only as hashes) and looked up on the request path."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.config import ConfigError, state_dir
from gateway.tenancy.access import ADMIN, EMPTY_ACCESS, AccessSnapshot, Principal

__all__ = ["ADMIN", "AdminKey", "KeyRing", "Principal", "admin_key", "hash_key", "new_key"]

KEY_PREFIX = "sk-llmgw-"
ADMIN_KEY_FILE = "admin.key"


def hash_key(key: str) -> str:
    """The stored form of a key: its SHA-256, hex. Keys are long random strings, so no salt."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass
class AdminKey:
    """The admin key's hash, and the key itself only when it was just generated (to print once)."""

    hash: str
    generated: str | None = None
    path: Path | None = None


def admin_key(env_var: str = "LLMGW_ADMIN_KEY", create: bool = True) -> AdminKey | None:
    """The admin key from `env_var`, else from the state directory, else a new one saved there.

    A new key is written with mode 0600 and returned in `generated` so the caller prints it
    once; it is never logged afterwards.
    """
    from_env = os.environ.get(env_var)
    if from_env:
        return AdminKey(hash_key(_long_enough(from_env, f"${env_var}")))
    path = state_dir() / ADMIN_KEY_FILE
    if path.exists():
        return AdminKey(hash_key(_read_key_file(path)), path=path)
    if not create:
        return None
    key = new_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return AdminKey(hash_key(key), generated=key, path=path)


def read_admin_key(env_var: str = "LLMGW_ADMIN_KEY") -> str | None:
    """The admin key itself, for the CLI: from the environment or the state directory."""
    from_env = os.environ.get(env_var)
    if from_env:
        return _long_enough(from_env, f"${env_var}")
    path = state_dir() / ADMIN_KEY_FILE
    return _read_key_file(path) if path.exists() else None


MIN_ADMIN_KEY_CHARS = 32


def _long_enough(key: str, source: str) -> str:
    key = key.strip()
    if len(key) < MIN_ADMIN_KEY_CHARS:
        raise ConfigError(
            f"{source}: the admin key has {len(key)} characters; at least "
            f"{MIN_ADMIN_KEY_CHARS} are required (delete it and let llmgw generate one, or "
            "use 'python -c \"import secrets; print(secrets.token_urlsafe(32))\"')"
        )
    return key


def _read_key_file(path: Path) -> str:
    """The key in `path`, if only this user owns and may read or write the file: anyone else
    who could write it could make themselves admin."""
    info = path.stat()
    if info.st_uid != os.getuid():
        raise ConfigError(
            f"{path}: the admin key file belongs to another user (uid {info.st_uid}); remove "
            "it, or make it yours with chown and 'chmod 600'"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path}: the admin key file is open to other users (mode "
            f"{info.st_mode & 0o777:o}); run 'chmod 600 {path}'"
        )
    return _long_enough(path.read_text(), str(path))


class KeyRing:
    """Key hash -> principal, as the replica holds it: the operators' admin key and the pushed
    access snapshot's tenant keys. Lookups never leave the process."""

    def __init__(
        self,
        admin_hash: str | None = None,
        access: Callable[[], AccessSnapshot] = lambda: EMPTY_ACCESS,
        extra: dict[str, Principal] | None = None,
    ) -> None:
        self._fixed: dict[str, Principal] = dict(extra or {})
        if admin_hash is not None:
            self._fixed[admin_hash] = ADMIN
        self._access = access

    @property
    def version(self) -> int:
        """The access snapshot's version."""
        return self._access().version

    def lookup(self, key: str) -> Principal | None:
        """The principal of `key`, or None when no active key has its hash."""
        key_hash = hash_key(key)
        return self._fixed.get(key_hash) or self._access().principal(key_hash)
