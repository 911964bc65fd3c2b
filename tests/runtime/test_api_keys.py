"""API keys: stored hashed in a 0600 file, scoped, revocable, shared by the CLI and the
daemon through the file (a real file, two store objects as the two processes have)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from runtime.api_keys import KeyStore
from runtime.errors import KeyStoreError


def test_a_key_is_shown_once_and_only_its_hash_is_kept(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "api-keys.json")
    entry, key = store.add("lims", "operate")
    assert key.startswith(f"gk_{entry.id}_")
    assert len(key.split("_", 2)[2]) >= 43  # 256 bits, base64
    text = (tmp_path / "api-keys.json").read_text()
    assert key not in text
    assert key.split("_", 2)[2] not in text
    assert json.loads(text)["keys"][0]["sha256"] == entry.sha256
    assert stat.S_IMODE(os.stat(tmp_path / "api-keys.json").st_mode) == 0o600
    caller = store.verify(key)
    assert caller is not None
    assert (caller.key_id, caller.name, caller.scopes) == (entry.id, "lims", ("read", "operate"))


@pytest.mark.parametrize(
    "presented",
    ["", "garbage", "gk_", "gk_12345678_", "Bearer gk_x_y", "gk_deadbeef_" + "A" * 43],
)
def test_anything_but_a_known_key_is_refused(tmp_path: Path, presented: str) -> None:
    store = KeyStore(tmp_path / "api-keys.json")
    store.add("lims", "admin")
    assert store.verify(presented) is None


def test_a_forged_secret_for_a_real_id_is_refused(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "api-keys.json")
    _entry, key = store.add("lims", "read")
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert store.verify(forged) is None
    assert store.verify(key) is not None


def test_keys_change_under_a_running_reader(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    daemon, cli = KeyStore(path), KeyStore(path)
    assert daemon.verify("gk_00000000_x") is None  # no file yet: nobody gets in
    entry, key = cli.add("dashboard", "read")
    assert daemon.verify(key) is not None
    revoked = cli.revoke(entry.id)
    assert revoked.revoked is not None
    assert daemon.verify(key) is None
    assert [k.id for k in daemon.entries()] == [entry.id]  # listed, revoked
    assert cli.revoke(entry.id).revoked == revoked.revoked  # revoking twice changes nothing


def test_bad_names_scopes_ids_and_files_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "api-keys.json"
    store = KeyStore(path)
    with pytest.raises(KeyStoreError, match="key name 'two words'"):
        store.add("two words", "read")
    with pytest.raises(KeyStoreError, match="scope 'root': accepted: read, operate, admin"):
        store.add("x", "root")
    store.add("x", "read")
    with pytest.raises(KeyStoreError, match="no key 'nope'"):
        store.revoke("nope")
    path.chmod(0o644)
    with pytest.raises(KeyStoreError, match="mode 0644 lets other users read"):
        KeyStore(path).entries()
    path.chmod(0o600)
    path.write_text("{not json")
    with pytest.raises(KeyStoreError, match="not a key file") as info:
        KeyStore(path).entries()
    assert "{not json" not in str(info.value)
