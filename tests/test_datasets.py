"""smk.datasets: digits, .npz, .csv and IDX readers, each with its malformed files."""
import gzip
import struct

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from softmaxkit import datasets


def write_idx(path, arr, code=0x08, *, compress=False, dims=None, magic=None):
    """An IDX file: 00 00 <type> <ndim>, big-endian uint32 dims, big-endian data."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    arr = np.asarray(arr)
    dims = arr.shape if dims is None else dims
    head = magic if magic is not None else bytes([0, 0, code, len(dims)])
    raw = head + struct.pack(f">{len(dims)}I", *dims) + arr.astype(dtype).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


# ---------------------------------------------------------------------------- digits


def test_load_digits():
    ds = datasets.load_digits()
    X, y = ds
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(10))
    assert X.min() == 0 and X.max() == 16
    assert len(ds.feature_names) == 64 and ds.name == "digits"
    assert datasets.load("digits").X.shape == (1797, 64)


# ---------------------------------------------------------------------------- npz


def test_npz_round_trip(tmp_path, rng):
    X = rng.normal(size=(7, 3))
    y = np.array(["a", "b", "a", "c", "b", "a", "c"])
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = datasets.load_npz(tmp_path / "d.npz")
    assert_array_equal(ds.X, X)
    assert_array_equal(ds.y, y)
    X2, y2 = datasets.load(tmp_path / "d.npz")
    assert_array_equal(X2, X)


def test_npz_images_are_flattened_and_labels_optional(tmp_path):
    X = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.savez(tmp_path / "img.npz", X=X)
    ds = datasets.load_npz(tmp_path / "img.npz", require_labels=False)
    assert ds.X.shape == (2, 12) and ds.X.dtype == np.float64 and ds.y is None
    with pytest.raises(ValueError, match=r"img\.npz: no array named 'y'"):
        datasets.load_npz(tmp_path / "img.npz")


@pytest.mark.parametrize(
    "arrays, match",
    [
        (dict(y=np.zeros(3)), r"no array named 'X'"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(4)), r"X has 3 rows but y has 4 labels"),
        (dict(X=np.zeros((3, 2)), y=np.zeros((3, 2))), r"y must be 1-D"),
        (dict(X=np.array([["a", "b"]]), y=np.zeros(1)), r"X must be numeric"),
    ],
)
def test_npz_malformed(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match="bad.npz: " + match):
        datasets.load_npz(path)


def test_npz_not_an_archive_and_pickles_refused(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError, match=r"junk\.npz: "):
        datasets.load_npz(junk)
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match=r"obj\.npz: .*pickle"):
        datasets.load_npz(obj)
    single = tmp_path / "single.npz"
    with open(single, "wb") as fh:
        np.save(fh, np.zeros(3))
    with pytest.raises(ValueError, match=r"single\.npz: .*\.npy"):
        datasets.load_npz(single)


# ---------------------------------------------------------------------------- csv


def test_csv_string_labels_default_last_column(tmp_path):
    f = tmp_path / "flowers.csv"
    f.write_text("length,width,species\n1.5,0.2,setosa\n4.7, 1.4 ,versicolor\n\n-2e-1,3,setosa\n")
    ds = datasets.load_csv(f)
    assert_array_equal(ds.X, [[1.5, 0.2], [4.7, 1.4], [-0.2, 3.0]])
    assert ds.y.tolist() == ["setosa", "versicolor", "setosa"]
    assert ds.feature_names == ["length", "width"] and ds.target_name == "species"


def test_csv_label_column_by_name_and_int_labels(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("label,a,b\n3,1,2\n1,3,4\n")
    ds = datasets.load_csv(f, label_column="label")
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [3, 1]
    assert_array_equal(ds.X, [[1, 2], [3, 4]])
    # feature columns in a chosen order, no labels required
    ds = datasets.load_csv(f, feature_columns=["b", "a"], require_labels=False)
    assert_array_equal(ds.X, [[2, 1], [4, 3]]) and ds.y is None
    assert datasets.csv_header(f) == ["label", "a", "b"]


def test_csv_gzip(tmp_path):
    f = tmp_path / "d.csv.gz"
    f.write_bytes(gzip.compress(b"a,b,y\n1,2,0\n3,4,1\n"))
    X, y = datasets.load(f)
    assert_array_equal(X, [[1, 2], [3, 4]]) and y.tolist() == [0, 1]


@pytest.mark.parametrize(
    "text, kwargs, match",
    [
        ("", {}, r"empty file"),
        ("a,b,y\n", {}, r"no data rows"),
        ("1,2,3\n4,5,6\n", {}, r"bad header: .* the number '1'"),
        ("a,a,y\n1,2,3\n", {}, r"bad header: repeated column name"),
        ("a,,y\n1,2,3\n", {}, r"bad header: empty column name"),
        ("a,b,y\n1,2,0\n3,4\n", {}, r"ragged rows: line 3 has 2 fields, the header has 3"),
        ("a,b,y\n1,2,0\n3,x4,1\n", {}, r"line 3, column 'b': non-numeric value 'x4'"),
        ("a,b,y\n1,,0\n", {}, r"line 2, column 'b': empty cell"),
        ("a,b,y\n1,2,\n", {}, r"line 2, label column 'y': empty label"),
        ("a,b,y\n1,2,0\n", dict(label_column="class"), r"missing label column 'class' \(columns: a, b, y\)"),
        ("a,b,y\n1,2,0\n", dict(feature_columns=["a", "z"]), r"missing feature column"),
        ("y\n1\n", {}, r"no feature columns"),
    ],
)
def test_csv_malformed(tmp_path, text, kwargs, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(ValueError, match=r"bad\.csv: " + match):
        datasets.load_csv(f, **kwargs)


def test_csv_binary_garbage(tmp_path):
    f = tmp_path / "bin.csv"
    f.write_bytes(b"\xff\xfe\x00\x81\x82garbage")
    with pytest.raises(ValueError, match=r"bin\.csv: not a text CSV file"):
        datasets.load_csv(f)


# ---------------------------------------------------------------------------- idx


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_mnist_pair(tmp_path, rng, compress):
    sfx = ".gz" if compress else ""
    images = rng.integers(0, 256, size=(5, 4, 3)).astype(np.uint8)
    labels = np.array([7, 0, 9, 1, 7], dtype=np.uint8)
    ip = write_idx(tmp_path / f"train-images-idx3-ubyte{sfx}", images, compress=compress)
    write_idx(tmp_path / f"train-labels-idx1-ubyte{sfx}", labels, compress=compress)
    assert_array_equal(datasets.load_idx(ip), images)
    ds = datasets.load(ip)  # the labels file is found beside the images
    assert ds.X.shape == (5, 12) and ds.X.dtype == np.float64
    assert_array_equal(ds.X, images.reshape(5, 12))
    assert ds.y.tolist() == [7, 0, 9, 1, 7]
    assert ds.files == (str(ip), str(tmp_path / f"train-labels-idx1-ubyte{sfx}"))


@pytest.mark.parametrize("code", [0x09, 0x0B, 0x0C, 0x0D, 0x0E])
def test_idx_other_types_big_endian(tmp_path, code):
    arr = np.array([[-3, 2, 1000], [7, -8, 9]]) if code != 0x09 else np.array([[-3, 2, 100]])
    p = write_idx(tmp_path / "a.idx", arr, code)
    out = datasets.load_idx(p)
    assert_array_equal(out, arr)
    assert out.dtype.isnative


def test_idx_labels_given_explicitly(tmp_path):
    ip = write_idx(tmp_path / "imgs.idx3", np.zeros((2, 2, 2), np.uint8))
    lp = write_idx(tmp_path / "somewhere.idx1", np.array([1, 2], np.uint8))
    ds = datasets.load_mnist(ip, lp)
    assert ds.y.tolist() == [1, 2]
    assert datasets.load(ip, labels=lp).y.tolist() == [1, 2]
    with pytest.raises(ValueError, match=r"imgs\.idx3: no label file found"):
        datasets.load_mnist(ip)
    assert datasets.load_mnist(ip, require_labels=False).y is None


def test_idx_magic_mismatch(tmp_path):
    p = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((2, 2), np.uint8), magic=b"\x01\x02\x08\x02")
    with pytest.raises(ValueError, match=r"x-idx3-ubyte: IDX magic number mismatch: got bytes 01 02 08 02"):
        datasets.load_idx(p)
    p = write_idx(tmp_path / "y-idx3-ubyte", np.zeros((2, 2), np.uint8), magic=b"\x00\x00\x07\x02")
    with pytest.raises(ValueError, match=r"IDX magic number mismatch"):
        datasets.load_idx(p)


def test_idx_size_mismatch_and_truncation(tmp_path):
    p = write_idx(tmp_path / "s-idx3-ubyte", np.zeros((2, 3), np.uint8), dims=(2, 4))
    with pytest.raises(ValueError, match=r"IDX size mismatch: dimensions \(2, 4\) of uint8 need 8 data bytes, file has 6"):
        datasets.load_idx(p)
    p.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match=r"IDX header truncated"):
        datasets.load_idx(p)
    p.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"too short for an IDX header"):
        datasets.load_idx(p)


def test_idx_corrupt_gzip_and_count_mismatch(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02")
    p = tmp_path / "c-labels-idx1-ubyte.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=r"c-labels-idx1-ubyte\.gz: corrupt gzip data"):
        datasets.load_idx(p)
    ip = write_idx(tmp_path / "t-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8))
    write_idx(tmp_path / "t-labels-idx1-ubyte", np.array([1, 2], np.uint8))
    with pytest.raises(ValueError, match=r"has 2 labels but .* has 3 images"):
        datasets.load(ip)


# ---------------------------------------------------------------------------- dispatch


def test_load_dispatch_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv: no such file"):
        datasets.load(tmp_path / "nope.csv")
    with pytest.raises(ValueError, match=r"is a directory"):
        datasets.load(tmp_path)
    f = tmp_path / "data.parquet"
    f.write_bytes(b"PAR1....")
    with pytest.raises(ValueError, match=r"data\.parquet: unknown data format"):
        datasets.load(f)
    with pytest.raises(TypeError, match="label_column must be a column name"):
        (tmp_path / "a.csv").write_text("a,y\n1,2\n")
        datasets.load_csv(tmp_path / "a.csv", label_column=1)


# ---------------------------------------------------------------------------- hostile files


def traced_peak(fn):
    """(result, peak bytes Python allocated during fn())."""
    import tracemalloc

    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_idx_header_is_checked_before_the_data_is_inflated(tmp_path):
    # 2 x 2 images declared, 16 MiB of zeros behind them, 16 KiB on disk
    p = tmp_path / "bomb-images-idx3-ubyte.gz"
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + struct.pack(">2I", 2, 2) + bytes(2**24)))
    assert p.stat().st_size < 2**15
    with pytest.raises(ValueError) as info:
        traced_peak(lambda: datasets.load_idx(p))
    assert "IDX size mismatch: dimensions (2, 2) of uint8 need 4 data bytes, file has more than 4" in str(info.value)
    _, peak = traced_peak(lambda: pytest.raises(ValueError, datasets.load_idx, p))
    assert peak < 2**20, peak  # the 16 MiB were never inflated
    # dimensions declaring more than the compressed bytes can inflate to: refused unread
    p.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + struct.pack(">I", 4_000_000_000) + bytes(10)))
    with pytest.raises(ValueError, match=r"need 4000000000 data bytes, file has \d+ compressed bytes"):
        datasets.load_idx(p)
    # and more than max_bytes
    q = write_idx(tmp_path / "big-idx1-ubyte.gz", np.zeros(1000, np.uint8), compress=True)
    with pytest.raises(ValueError, match=r"declare 1000 bytes, more than the 100-byte limit"):
        datasets.load_idx(q, max_bytes=100)
    assert datasets.load_idx(q).shape == (1000,)


def test_npz_reads_only_X_and_y(tmp_path):
    f = tmp_path / "d.npz"
    np.savez_compressed(f, X=np.ones((4, 2)), y=np.arange(4), junk=np.zeros(2**22))  # 32 MiB
    ds, peak = traced_peak(lambda: datasets.load_npz(f))
    assert ds.X.shape == (4, 2) and ds.y.tolist() == [0, 1, 2, 3]
    assert peak < 2**20, peak


def test_npz_declaring_a_huge_array_is_refused(tmp_path):
    from test_io import npy_bytes, write_zip

    f = write_zip(tmp_path / "huge.npz", {"X.npy": npy_bytes(np.zeros((2, 2)), shape=(10**7, 10**6)),
                                          "y.npy": npy_bytes(np.zeros(2))})
    with pytest.raises(ValueError, match=r"huge\.npz: array 'X' declares shape \(10000000, 1000000\)"):
        datasets.load_npz(f)


@pytest.mark.parametrize("cell", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_csv_non_finite_features_refused(tmp_path, cell):
    f = tmp_path / "nf.csv"
    f.write_text(f"a,b,y\n1,2,0\n\n3,{cell},1\n")  # the blank line counts: line 4
    with pytest.raises(ValueError, match=r"nf\.csv: line 4, column 'b': non-finite value"):
        datasets.load_csv(f)


def test_csv_line_numbers_count_blank_lines(tmp_path):
    f = tmp_path / "gap.csv"
    f.write_text("a,b,y\n\n1,2,0\n\n\n3,oops,1\n")
    with pytest.raises(ValueError, match=r"gap\.csv: line 6, column 'b': non-numeric value 'oops'"):
        datasets.load_csv(f)


def test_npz_and_idx_non_finite_features_refused(tmp_path):
    X = np.ones((3, 2))
    X[2, 1] = np.nan
    np.savez(tmp_path / "nan.npz", X=X, y=np.arange(3))
    with pytest.raises(ValueError, match=r"nan\.npz: row 2, column 1: non-finite value nan"):
        datasets.load_npz(tmp_path / "nan.npz")
    imgs = np.ones((2, 2, 2))
    imgs[1, 0, 1] = np.inf
    ip = write_idx(tmp_path / "f-images-idx3-ubyte", imgs, 0x0D)
    write_idx(tmp_path / "f-labels-idx1-ubyte", np.array([0, 1], np.uint8))
    with pytest.raises(ValueError, match=r"f-images-idx3-ubyte: row 1, column 1: non-finite value inf"):
        datasets.load(ip)


def test_features_beyond_the_memory_bound_are_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "px.npz", X=np.zeros((100, 10), np.uint8), y=np.arange(100) % 2)
    monkeypatch.setattr(datasets, "default_max_bytes", lambda: 4000)  # 1000 bytes stored, 8000 as float64
    with pytest.raises(ValueError, match=r"px\.npz: X of shape \(100, 10\) needs 8000 bytes as float64, "
                                         r"more than the 4000-byte limit"):
        datasets.load_npz(tmp_path / "px.npz")
    monkeypatch.undo()
    assert datasets.load_npz(tmp_path / "px.npz").X.shape == (100, 10)


def test_gzip_csv_bomb_is_refused_at_the_limit(tmp_path):
    """A 60 MB CSV in 90 KB of gzip: parsed in full it would take gigabytes of Python
    strings; with a 256 KiB limit it is refused having inflated about 256 KiB."""
    p = tmp_path / "bomb.csv.gz"
    p.write_bytes(gzip.compress(b"a,b,label\n" + b"1,2,0\n" * 10**7))
    assert p.stat().st_size < 2**17
    info, peak = traced_peak(lambda: pytest.raises(ValueError, datasets.load_csv, p, max_bytes=2**18))
    assert str(info.value) == f"{p}: inflates to more than the 262144-byte limit; refusing to read on"
    assert peak < 2**23, peak  # the limit and its parsed rows, not 60 MB of text as rows
    # the header is checked before the rest is inflated
    p.write_bytes(gzip.compress(b"1,2,3\n" + b"1,2,0\n" * 10**7))
    info, peak = traced_peak(lambda: pytest.raises(ValueError, datasets.load_csv, p))
    assert "bad header: the first row must hold column names" in str(info.value)
    assert peak < 2**22, peak
    # a raw file over the limit: refused by its size; under it: read as before
    q = tmp_path / "plain.csv"
    q.write_text("a,b,label\n" + "1,2,0\n" * 1000)
    with pytest.raises(ValueError, match=r"plain\.csv: 6010 bytes, more than the 1000-byte limit"):
        datasets.load_csv(q, max_bytes=1000)
    assert datasets.load_csv(q).X.shape == (1000, 2)
    assert datasets.csv_max_bytes() > 2**20


def test_load_npy_maps_the_features_and_reads_the_labels(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.array(["a", "b", "a", "b"]))
    ds = datasets.load(tmp_path / "X.npy", labels=tmp_path / "y.npy")
    assert isinstance(ds.X, np.memmap) and ds.X.dtype == np.float32
    assert_array_equal(ds.X, X)
    assert ds.y.tolist() == ["a", "b", "a", "b"]
    assert ds.files == (str(tmp_path / "X.npy"), str(tmp_path / "y.npy"))
    assert datasets.load_npy(tmp_path / "X.npy", require_labels=False).y is None
    bad = np.zeros((50000, 3))
    bad[41234, 2] = -np.inf
    np.save(tmp_path / "inf.npy", bad)
    with pytest.raises(ValueError, match=r"inf\.npy: row 41234, column 2: non-finite value -inf"):
        datasets.load_npy(tmp_path / "inf.npy", require_labels=False)
    import softmaxkit.datasets as mod  # small blocks: the bad row is found in a later block
    with pytest.raises(ValueError, match=r"row 41234, column 2"):
        mod._check_finite_file(tmp_path / "inf.npy", np.load(tmp_path / "inf.npy", mmap_mode="r"), 1000)
    assert datasets.load_npy(tmp_path / "inf.npy", require_labels=False, check_finite=False).X.shape == (50000, 3)
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
    np.save(tmp_path / "c.npy", np.zeros((4, 2), dtype=complex))
    np.save(tmp_path / "y2.npy", np.zeros((4, 2)))
    for args, match in [
        ((tmp_path / "junk.npy",), r"junk\.npy: not a \.npy array"),
        ((tmp_path / "empty.npy",), r"empty\.npy: no data \(shape \(0, 3\)\)"),
        ((tmp_path / "c.npy",), "expected real numbers, got dtype complex128"),
        ((tmp_path / "X.npy", tmp_path / "y2.npy"), r"y2\.npy: labels must be a 1-D array"),
        ((tmp_path / "X.npy",), "pass the labels as a 1-D .npy file"),
    ]:
        with pytest.raises(ValueError, match=match):
            datasets.load_npy(*args)
