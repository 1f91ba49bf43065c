"""softmaxkit._io: atomic writes, never over an input, bounded .npz reading."""
import io
import os
import stat
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from softmaxkit._io import (
    DEFLATE_MAX_RATIO,
    atomic_open,
    atomic_path,
    check_npz,
    read_npz,
    refuse_overwrite,
    same_file,
)


def npy_bytes(arr, *, shape=None, extra=b""):
    """A .npy file's bytes; ``shape`` overrides the header's shape (a lie)."""
    buf = io.BytesIO()
    np.save(buf, arr)
    raw = buf.getvalue()
    if shape is not None:
        hlen = struct.unpack("<H", raw[8:10])[0]
        header = raw[10:10 + hlen].decode("latin1")
        header = header.replace(repr(arr.shape), repr(tuple(shape)))
        header = header.rstrip().ljust(hlen - 1) + "\n"
        assert len(header) == hlen
        raw = raw[:10] + header.encode("latin1") + raw[10 + hlen:]
    return raw + extra


def write_zip(path, members, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


# ---------------------------------------------------------------------------- writing


def test_atomic_path_replaces_only_on_success(tmp_path):
    target = tmp_path / "model.npz"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp != target
            tmp.write_bytes(b"half a fi")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]  # no temporary left behind
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # untouched until the block ends
    assert target.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


def test_atomic_open_modes_and_permissions(tmp_path):
    new = tmp_path / "new.csv"
    with atomic_open(new, "w", newline="") as fh:
        fh.write("a,b\n")
    assert new.read_text() == "a,b\n"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~mask  # as open() would make it
    old = tmp_path / "old.bin"
    old.write_bytes(b"x")
    os.chmod(old, 0o640)
    with atomic_open(old, "wb") as fh:
        fh.write(b"y")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640  # the replaced file's mode is kept
    with pytest.raises(ValueError, match="mode must be"):
        with atomic_open(old, "a"):
            pass


def test_atomic_path_error_names_the_target(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        with atomic_path(tmp_path / "no" / "such" / "x.csv"):
            pass
    assert info.value.filename == str(tmp_path / "no" / "such" / "x.csv")


def test_same_file_and_refuse_overwrite(tmp_path):
    data = tmp_path / "wine.npz"
    data.write_bytes(b"data")
    (tmp_path / "link.npz").symlink_to(data)
    os.link(data, tmp_path / "hard.npz")
    sub = tmp_path / "sub"
    sub.mkdir()
    assert same_file(data, tmp_path / "link.npz")
    assert same_file(data, tmp_path / "hard.npz")
    assert same_file(data, sub / ".." / "wine.npz")
    assert not same_file(data, tmp_path / "other.npz")
    for out in ("wine.npz", "link.npz", "hard.npz", "sub/../wine.npz"):
        with pytest.raises(ValueError, match=r"--out .* is the --data file: refusing to overwrite an input"):
            refuse_overwrite({"--out": tmp_path / out}, {"--data": data})
    refuse_overwrite({"--out": tmp_path / "model.npz", "--report": None}, {"--data": data, "x": None})
    with pytest.raises(ValueError, match=r"--report .* is also the --out output"):
        refuse_overwrite({"--out": tmp_path / "m.json", "--report": tmp_path / "m.json"}, {})


# ---------------------------------------------------------------------------- .npz


def test_read_npz_reads_only_what_is_asked(tmp_path):
    f = tmp_path / "a.npz"
    X = np.arange(6.0).reshape(2, 3)
    np.savez_compressed(f, X=X, y=np.array(["a", "b"]), F=np.asfortranarray(X))
    out = read_npz(f, ["X", "F", "missing"])
    assert sorted(out) == ["F", "X"]
    assert_array_equal(out["X"], X) and assert_array_equal(out["F"], X)
    assert read_npz(f)["y"].tolist() == ["a", "b"]
    with pytest.raises(ValueError, match=r"a\.npz: no array named 'Z' \(found \['F', 'X', 'y'\]\)"):
        read_npz(f, ["X"], required=["Z"])
    assert {k: v[0] for k, v in check_npz(f).items()} == {"X": (2, 3), "y": (2,), "F": (2, 3)}


def test_unknown_members_are_never_inflated(tmp_path):
    """A small archive with a large compressed zero array: reading X costs X."""
    f = tmp_path / "bomb.npz"
    np.savez_compressed(f, X=np.ones((3, 2)), junk=np.zeros(4 * 2**20))  # 32 MiB of zeros
    assert f.stat().st_size < 2**20
    tracemalloc.start()
    try:
        out = read_npz(f, ["X"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert_array_equal(out["X"], np.ones((3, 2)))
    assert peak < 2**20, peak
    with pytest.raises(ValueError, match=r"bomb\.npz: array 'junk' declares 33554560 bytes, more than"):
        read_npz(f, max_bytes=2**20)  # asked for, but over the limit: refused unread


def test_declared_sizes_are_checked_before_reading(tmp_path):
    # a .npy header claiming 10**13 elements over 16 bytes of data
    lie = write_zip(tmp_path / "lie.npz", {"X.npy": npy_bytes(np.zeros(2), shape=(10**13,))})
    with pytest.raises(ValueError, match=r"lie\.npz: array 'X' declares shape \(10000000000000,\) "
                                         r"of float64 \(80000000000000 bytes\) but holds 16 bytes"):
        read_npz(lie, ["X"])
    with pytest.raises(ValueError, match="declares shape"):
        check_npz(lie)
    # a zip directory claiming more than deflate can produce from the compressed bytes
    f = write_zip(tmp_path / "ratio.npz", {"X.npy": npy_bytes(np.zeros(2**20))})
    raw = bytearray(f.read_bytes())
    info = zipfile.ZipFile(f).getinfo("X.npy")
    fake = DEFLATE_MAX_RATIO * info.compress_size * 4
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers
        i = raw.find(sig)
        raw[i + off:i + off + 4] = struct.pack("<I", fake)
    f.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"ratio\.npz: array 'X' declares \d+ bytes from \d+ "
                                         r"compressed bytes, more than deflate can produce"):
        read_npz(f)


def test_corrupt_and_foreign_files(tmp_path):
    good = tmp_path / "good.npz"
    np.savez(good, X=np.arange(100.0))
    raw = bytearray(good.read_bytes())
    raw[200] ^= 0xFF  # a data byte: the CRC no longer matches
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"crc\.npz: corrupt archive member 'X'"):
        read_npz(bad)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"cut\.npz: corrupt or truncated \.npz archive"):
        read_npz(cut)
    csv = tmp_path / "iris.csv"
    csv.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"iris\.csv: not a softmaxkit model file \(not a zip"):
        read_npz(csv, what="a softmaxkit model file")
    obj = write_zip(tmp_path / "obj.npz", {"X.npy": b"x"})
    np.savez(obj, X=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz: array 'X' holds Python objects \(pickle\)"):
        read_npz(obj)
    junk = write_zip(tmp_path / "junk.npz", {"X.npy": b"not an array"})
    with pytest.raises(ValueError, match=r"junk\.npz: array 'X' is not a readable \.npy array"):
        read_npz(junk)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_npz(tmp_path / "nope.npz")


@pytest.mark.parametrize("method", [12, 14])  # bzip2, lzma: a bit-flipped method byte
def test_read_npz_wrong_compression_method_is_one_clear_error(tmp_path, method):
    import zipfile

    f = tmp_path / "m.npz"
    np.savez_compressed(f, X=np.arange(1000.0))
    raw = bytearray(f.read_bytes())
    # local file header: method at offset 8; central directory entry: at offset 10
    raw[8:10] = method.to_bytes(2, "little")
    cd = raw.rfind(b"PK\x01\x02")
    raw[cd + 10:cd + 12] = method.to_bytes(2, "little")
    f.write_bytes(bytes(raw))
    assert zipfile.is_zipfile(f)
    with pytest.raises(ValueError, match=r"m\.npz: corrupt archive member 'X'"):
        read_npz(f, ["X"])


def test_open_bounded_reads_raw_and_gzip_within_the_limit(tmp_path):
    import gzip

    from softmaxkit._io import open_bounded

    raw, gz = tmp_path / "a.bin", tmp_path / "a.bin.gz"
    raw.write_bytes(b"x" * 50000)
    gz.write_bytes(gzip.compress(b"x" * 50000))
    for p in (raw, gz):
        with open_bounded(p, max_bytes=50000) as fh:
            assert fh.read() == b"x" * 50000
    with pytest.raises(ValueError, match=r"a\.bin: 50000 bytes, more than the 49999-byte limit"):
        open_bounded(raw, max_bytes=49999)
    with open_bounded(gz, max_bytes=49999) as fh:
        assert fh.read(100) == b"x" * 100  # reading under the limit is fine ...
        with pytest.raises(ValueError, match=r"a\.bin\.gz: inflates to more than the 49999-byte limit"):
            fh.read()  # ... past it is not
