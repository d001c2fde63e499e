"""Session file: lossless round trip, atomic save, safe loading of hostile files, migration."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from photonpipe.errors import InputFileError
from photonpipe.stellar.safe_pickle import UnsafePickleError, dumps_plain, loads_plain
from photonpipe.stellar.sessionfile import (
    SCHEMA_VERSION,
    SESSION_PICKLE,
    SessionFileError,
    SessionLimits,
    empty_state,
    read_session_file,
    sha256_hex,
    write_session_file,
)


def _state_with(files: dict[str, bytes]) -> dict:
    state = empty_state()
    state["input_spectra_filenames"] = list(files)
    state["input_spectra_sha256"] = {n: sha256_hex(d) for n, d in files.items()}
    return state


def _tarball(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buffer.getvalue()))
    return path


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info


def _good_pickle() -> bytes:
    return dumps_plain(_state_with({}))


class _RunsCommand:
    """An object whose unpickling would run a shell command (the classic pickle attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("__import__('os').getcwd()",))


def test_round_trip_is_lossless(tmp_path: Path) -> None:
    files = {"star_blue.fits": bytes(range(256)) * 40, "template.fits": b"\x00\x01 template"}
    state = _state_with({"star_blue.fits": files["star_blue.fits"]})
    state["ancillary_files"] = {"template.fits": {"kind": "rv_template"}}
    state["rv"] = {
        "rv_measured": -25.123456789012345,
        "ccf": np.linspace(-1, 1, 101).reshape(1, 101),
        "range": (5100.0, 5300.0),
        "flags": {True, False},
    }
    state["normalization"]["orders"] = [
        {"continuum": np.arange(5, dtype=">f4"), "mask": np.array([True, False])},
        None,
    ]
    state["notes"] = "Ünïcode notes ✓"
    state["measurements"] = {"abc:ew": {"ew": 1e-300, "complex": 1 + 2j, "raw": b"\xff\x00"}}
    path = write_session_file(tmp_path / "s.smh", state, files)
    loaded, loaded_files = read_session_file(path)
    assert loaded_files == files
    assert loaded.keys() == state.keys()
    assert loaded["rv"]["rv_measured"] == state["rv"]["rv_measured"]
    np.testing.assert_array_equal(loaded["rv"]["ccf"], state["rv"]["ccf"])
    cont = loaded["normalization"]["orders"][0]["continuum"]
    assert cont.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(cont, np.arange(5))
    assert loaded["normalization"]["orders"][1] is None
    assert loaded["rv"]["range"] == (5100.0, 5300.0)
    assert loaded["rv"]["flags"] == {True, False}
    assert loaded["notes"] == state["notes"]
    assert loaded["measurements"] == state["measurements"]
    assert loaded["schema_version"] == SCHEMA_VERSION
    # The pickle inside is protocol 2.
    with gzip.open(path) as gz, tarfile.open(fileobj=gz) as tar:
        handle = tar.extractfile(SESSION_PICKLE)
        assert handle is not None
        raw = handle.read()
    assert raw[:2] == b"\x80\x02"


def test_save_is_atomic_and_refuses_non_plain_state(tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    path = write_session_file(tmp_path / "s.smh", _state_with({}), {})
    before = path.read_bytes()
    bad = _state_with({})
    bad["notes"] = object()
    with pytest.raises(UnsafePickleError, match="object"):
        write_session_file(path, bad, {})
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.smh"]
    with pytest.raises(ValueError, match="plain file name"):
        write_session_file(path, _state_with({}), {"../escape.fits": b""})
    assert path.read_bytes() == before


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_code_running_pickle_is_refused_and_nothing_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"rv": _RunsCommand(marker)}, protocol=protocol)
    session = _tarball(tmp_path / "evil.smh", [(_member(SESSION_PICKLE, payload), payload)])
    with pytest.raises(SessionFileError, match=r"refused to load (posix|nt)\.system"):
        read_session_file(session)
    assert not marker.exists()


@pytest.mark.parametrize(
    "value",
    [
        _CallsEval(),
        np.array([1, None], dtype=object),
        np.zeros(3, dtype=[("a", "f8")]),
        np.ma.masked_array([1.0, 2.0]),
        np.datetime64("2020-01-01"),
        Path("/etc/passwd"),
        InputFileError("x", "y"),
    ],
)
def test_other_objects_are_refused(value: object) -> None:
    with pytest.raises(UnsafePickleError):
        loads_plain(pickle.dumps({"x": value}, protocol=2))


def test_shared_references_do_not_explode() -> None:
    # 60 levels, each a list holding the next level twice: 2^60 paths, 60 objects
    level: list = [0]
    for _ in range(60):
        level = [level, level]
    data = pickle.dumps({"x": level}, protocol=2)
    loaded = loads_plain(data)  # finishes at once: each shared list is checked once
    assert loaded["x"][0] is loaded["x"][1]
    deep: list = [0]
    for _ in range(300):
        deep = [deep]
    deep_pickle = pickle.dumps(deep, protocol=2)
    with pytest.raises(UnsafePickleError, match="nested too deeply"):
        loads_plain(deep_pickle)


def test_hand_made_streams_cannot_construct_objects() -> None:
    # GLOBAL numpy.ndarray + NEWOBJ would build an array directly: refused opcode.
    newobj = b"\x80\x02cnumpy\nndarray\nK\x03\x85\x81."
    with pytest.raises(UnsafePickleError):
        loads_plain(newobj)
    # A lone allowed global must not leak out as a callable.
    with pytest.raises(UnsafePickleError):
        loads_plain(b"\x80\x02c__builtin__\nset\n.")
    # _codecs.encode with a non-latin1 codec.
    evil_codec = b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(UnsafePickleError, match="codec"):
        loads_plain(evil_codec)
    with pytest.raises(UnsafePickleError, match="corrupt"):
        loads_plain(b"\x80\x02]q\x00(K\x01")


@pytest.mark.parametrize(
    ("member", "data", "problem"),
    [
        (_member("/etc/cron.d/x", b"x"), b"x", "absolute path"),
        (_member("../outside.txt", b"x"), b"x", r"\.\."),
        (_member("sub/../../x", b"x"), b"x", r"\.\."),
        (_member("link", kind=tarfile.SYMTYPE), None, "is a link"),
        (_member("hard", kind=tarfile.LNKTYPE), None, "is a link"),
        (_member("dev", kind=tarfile.CHRTYPE), None, "device"),
        (_member("fifo", kind=tarfile.FIFOTYPE), None, "device or FIFO"),
        (_member("adir", kind=tarfile.DIRTYPE), None, "not a regular file"),
        (_member("sub/file", b"x"), b"x", "not a plain file name"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, member: tarfile.TarInfo, data: bytes | None, problem: str
) -> None:
    if member.issym() or member.islnk():
        member.linkname = "/etc/passwd"
    pkl = _good_pickle()
    session = _tarball(tmp_path / "evil.smh", [(_member(SESSION_PICKLE, pkl), pkl), (member, data)])
    with pytest.raises(SessionFileError, match=problem):
        read_session_file(session)
    assert not (tmp_path.parent / "outside.txt").exists()


def test_size_bounds(tmp_path: Path) -> None:
    pkl = _good_pickle()
    big = b"\0" * 100_000
    session = _tarball(
        tmp_path / "big.smh", [(_member(SESSION_PICKLE, pkl), pkl), (_member("a", big), big)]
    )
    with pytest.raises(SessionFileError, match="larger than 1000 bytes"):
        read_session_file(session, SessionLimits(max_member_bytes=1000))
    with pytest.raises(SessionFileError, match="decompresses to more than"):
        read_session_file(session, SessionLimits(max_total_bytes=50_000))
    with pytest.raises(SessionFileError, match="larger than 10 bytes"):
        read_session_file(session, SessionLimits(max_pickle_bytes=10))
    with pytest.raises(SessionFileError, match="more than 1 members"):
        read_session_file(session, SessionLimits(max_members=1))


def test_duplicate_and_missing_members(tmp_path: Path) -> None:
    pkl = _good_pickle()
    dup = _tarball(tmp_path / "dup.smh", [(_member(SESSION_PICKLE, pkl), pkl)] * 2)
    with pytest.raises(SessionFileError, match="appears twice"):
        read_session_file(dup)
    none = _tarball(tmp_path / "none.smh", [(_member("a", b"x"), b"x")])
    with pytest.raises(SessionFileError, match=r"no session\.pkl"):
        read_session_file(none)
    state = _state_with({"spec.fits": b"data"})
    pkl = dumps_plain(state)
    missing = _tarball(tmp_path / "missing.smh", [(_member(SESSION_PICKLE, pkl), pkl)])
    with pytest.raises(SessionFileError, match=r"input spectrum 'spec\.fits' is missing"):
        read_session_file(missing)
    changed = _tarball(
        tmp_path / "changed.smh",
        [(_member(SESSION_PICKLE, pkl), pkl), (_member("spec.fits", b"DATA"), b"DATA")],
    )
    with pytest.raises(SessionFileError, match="does not match its checksum"):
        read_session_file(changed)


def test_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "plain.smh").write_bytes(b"not gzip at all")
    with pytest.raises(SessionFileError, match="not a readable gzipped tarball"):
        read_session_file(tmp_path / "plain.smh")
    good = write_session_file(
        tmp_path / "good.smh", _state_with({"a": b"x" * 5000}), {"a": b"x" * 5000}
    )
    (tmp_path / "cut.smh").write_bytes(good.read_bytes()[:60])
    with pytest.raises(SessionFileError, match=r"cut\.smh"):
        read_session_file(tmp_path / "cut.smh")
    with pytest.raises(SessionFileError, match="no such session file"):
        read_session_file(tmp_path / "absent.smh")
    notdict = dumps_plain([1, 2])
    lst = _tarball(tmp_path / "list.smh", [(_member(SESSION_PICKLE, notdict), notdict)])
    with pytest.raises(SessionFileError, match="does not hold a dict"):
        read_session_file(lst)


def test_schema_1_migrates_and_newer_is_refused(tmp_path: Path) -> None:
    old = {
        "input_spectra_paths": ["/data/night1/star_blue.fits"],
        "discarded_orders": [3],
        "rv": {"rv_applied": -12.5},
    }
    pkl = pickle.dumps(old, protocol=2)
    data = b"spectrum bytes"
    session = _tarball(
        tmp_path / "v1.smh",
        [(_member(SESSION_PICKLE, pkl), pkl), (_member("star_blue.fits", data), data)],
    )
    state, files = read_session_file(session)
    assert state["schema_version"] == SCHEMA_VERSION
    assert state["input_spectra_filenames"] == ["star_blue.fits"]
    assert "input_spectra_paths" not in state
    assert state["discarded_orders"] == [3]
    assert state["rv"] == {"rv_applied": -12.5}
    assert state["physics"] == {}
    assert [h["action"] for h in state["history"][-2:]] == ["migrated 1->2", "migrated 2->3"]
    assert files == {"star_blue.fits": data}
    newer = dumps_plain({**_state_with({}), "schema_version": SCHEMA_VERSION + 1})
    future = _tarball(tmp_path / "new.smh", [(_member(SESSION_PICKLE, newer), newer)])
    with pytest.raises(SessionFileError, match="newer than this photonpipe"):
        read_session_file(future)


def test_an_array_referenced_twice_loads_as_the_same_array() -> None:
    """Pickle memoizes an array before building it; both references get the built array.

    Before: the second reference loaded as the placeholder and the session was refused
    ("object of type _EmptyArray in session data") -- e.g. a solve's result kept both as its
    method's result and as the adopted result.
    """
    jacobian = np.arange(6.0).reshape(2, 3)
    state = {"methods": {"m": {"jacobian": jacobian}}, "adopted_result": {"jacobian": jacobian}}
    loaded = loads_plain(dumps_plain(state))
    assert np.array_equal(loaded["adopted_result"]["jacobian"], jacobian)
    assert loaded["adopted_result"]["jacobian"] is loaded["methods"]["m"]["jacobian"]
