"""The embedded store's privacy rules as values: renamed commands sent under the server's names,
the names read back from the settings file, and the data dir made private or refused."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ledger.embedded import (
    CONFIG_NAME,
    EmbeddedRedisError,
    renamed_commands,
    secure_data_dir,
)
from ledger.store_client import renamed_args

RENAMED = {"CONFIG": "CONFIG-3f2a", "DEBUG": "DEBUG-9c1e"}


@pytest.mark.parametrize(
    ("args", "sent"),
    [
        (("CONFIG GET", "maxmemory"), ("CONFIG-3f2a", "GET", "maxmemory")),
        (("config get", "maxmemory"), ("CONFIG-3f2a", "get", "maxmemory")),
        (("DEBUG", "SLEEP", "0.5"), ("DEBUG-9c1e", "SLEEP", "0.5")),
        ((b"DEBUG", b"SLEEP", b"0"), ("DEBUG-9c1e", b"SLEEP", b"0")),
        (("GET", "config"), ("GET", "config")),
        (("SCRIPT LOAD", "return 1"), ("SCRIPT LOAD", "return 1")),
    ],
)
def test_only_renamed_commands_change_name(args: tuple[object, ...], sent: tuple[object]) -> None:
    assert renamed_args(args, RENAMED) == sent


def test_the_names_are_read_from_the_settings_file_beside_the_socket(tmp_path: Path) -> None:
    (tmp_path / CONFIG_NAME).write_text(
        "port 0\nunixsocket x\nrename-command CONFIG CONFIG-3f2a\nrename-command debug DEBUG-9c1e\n"
    )
    assert renamed_commands(f"unix://{tmp_path}/valkey.sock") == RENAMED
    # Another store: nothing renamed, whatever lies around.
    assert renamed_commands(f"unix://{tmp_path}/elsewhere/valkey.sock") == {}
    assert renamed_commands("redis://127.0.0.1:6379/0") == {}


def _modes(root: Path) -> dict[str, int]:
    return {
        str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]
    }


def test_an_existing_data_dir_and_its_files_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "appendonlydir").mkdir(parents=True)
    for path in (data, data / "appendonlydir"):
        path.chmod(0o755)
    aof = data / "appendonlydir" / "appendonly.aof.1.incr.aof"
    aof.write_bytes(b"*1\r\n$4\r\nPING\r\n")
    aof.chmod(0o644)
    secure_data_dir(data)
    assert _modes(data) == {".": 0o700, "appendonlydir": 0o700, str(aof.relative_to(data)): 0o600}


def test_a_new_data_dir_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        secure_data_dir(tmp_path / "new" / "data")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new" / "data").stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757, 0o1777])
def test_a_data_dir_others_can_write_is_refused_and_left_as_it_was(
    tmp_path: Path, mode: int
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "appendonly.aof").write_bytes(b"")
    (data / "appendonly.aof").chmod(0o644)
    data.chmod(mode)
    before = _modes(data)
    with pytest.raises(EmbeddedRedisError, match="writable by other users"):
        secure_data_dir(data)
    assert _modes(data) == before
