"""Model files off the happy path (issue 9): every field validated on load, one
ModelFileError (a ValueError) naming the file and the field, bounded reads."""
import io
import tracemalloc
import zipfile

import numpy as np
import pytest
from sklearn.datasets import load_iris

from softmaxkit import SoftmaxRegression
from softmaxkit.linear_model import ModelFileError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    X, y = load_iris(return_X_y=True)
    est = SoftmaxRegression(standardize=True).fit(X, y)
    path = tmp_path_factory.mktemp("models") / "good.npz"
    est.save(path, metadata={"data": "iris"})
    return path, est, X


def _members(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _write(path, arrays, compressed=False):
    with open(path, "wb") as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)
    return path


def _expect(path, field, what=""):
    with pytest.raises(ModelFileError) as info:
        SoftmaxRegression.load(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    if field:
        assert f"field {field!r}" in msg, msg
    assert what in msg, msg
    return msg


def test_error_is_a_value_error():
    assert issubclass(ModelFileError, ValueError)


@pytest.mark.parametrize("field", ["mean", "scale"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_standardisation_is_refused(tmp_path, good, field, bad):
    """Used to load and then predict NaN."""
    path, _, _ = good
    arrays = _members(path)
    arrays[field] = arrays[field].copy()
    arrays[field][1] = bad
    _expect(_write(tmp_path / "m.npz", arrays), field, "non-finite")


@pytest.mark.parametrize(
    "field, value, what",
    [
        ("coef", np.array("text"), "dtype"),
        ("coef", np.zeros((3, 4), dtype=bool), "dtype"),
        ("coef", np.zeros(12), "inconsistent shapes"),
        ("intercept", np.zeros((3, 1)), "inconsistent shapes"),
        ("classes", np.array(5), "inconsistent shapes"),
        ("classes", np.array([0, 0, 1]), "distinct classes"),
        ("classes", np.array([0.0, np.nan, 1.0]), "non-finite"),
        ("classes_kind", np.array(3), "dtype"),
        ("classes_kind", np.array("bogus"), "'bogus'"),
        ("n_iter", np.array("ten"), "dtype"),
        ("n_iter", np.array(-1), "< 0"),
        ("n_iter", np.zeros(3, dtype=int), "inconsistent shapes"),
        ("params_json", np.array(3.5), "dtype"),
        ("params_json", np.array("[1, 2]"), "JSON list"),
        ("params_json", np.array('{"alpha": "big"}'), "alpha"),
        ("params_json", np.array('{"solver": "newton"}'), "solver"),
        ("params_json", np.array('{"standardize": false}'), "present"),
        ("metadata_json", np.array("3"), "JSON int"),
        ("history_json", np.array('{"loss": "abc"}'), "lists of numbers"),
        ("feature_names_in", np.array([1, 2, 3, 4]), "dtype"),
        ("feature_names_in", np.array(["a", "b"]), "inconsistent shapes"),
        ("mean", np.array(["a", "b", "c", "d"]), "dtype"),
        ("scale", np.zeros((4, 1)), "inconsistent shapes"),
        ("format_version", np.array("one"), "dtype"),
        ("format_version", np.array(0), "expected 1"),
    ],
)
def test_wrong_field_types_name_the_file_and_field(tmp_path, good, field, value, what):
    """Used to raise AttributeError / TypeError / ValueError without the file's name."""
    path, _, _ = good
    arrays = _members(path)
    arrays[field] = value
    _expect(_write(tmp_path / "bad.npz", arrays), field, what)


def test_missing_standardisation_names_the_field(tmp_path, good):
    path, _, _ = good
    arrays = _members(path)
    del arrays["scale"]
    _expect(_write(tmp_path / "m.npz", arrays), None, "missing 'scale'")


def test_bit_flips_never_escape_as_zlib_or_zip_errors(tmp_path, good):
    """Every single-byte flip of a compressed model gives ModelFileError or a model
    identical to the original (a flip in an unused byte); never zlib.error,
    BadZipFile, UnicodeDecodeError or anything without the file's name."""
    path, est, X = good
    raw = path.read_bytes()
    target = tmp_path / "flipped.npz"
    rng = np.random.default_rng(0)
    positions = np.unique(np.concatenate([np.arange(0, len(raw), 7), rng.integers(0, len(raw), 200)]))
    outcomes = {"error": 0, "same": 0}
    for i in positions:
        data = bytearray(raw)
        data[i] ^= 1 << int(rng.integers(0, 8))
        target.write_bytes(bytes(data))
        try:
            back = SoftmaxRegression.load(target)
        except ModelFileError as exc:
            assert str(target) in str(exc)
            outcomes["error"] += 1
        else:
            np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
            outcomes["same"] += 1
    assert outcomes["error"] > len(positions) // 2


def test_declared_size_is_checked_before_reading(tmp_path, good):
    """A member whose .npy header declares 10^13 elements is refused without reading."""
    path, _, _ = good
    arrays = _members(path)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "<f8", "fortran_order": False, "shape": (3, 10**13)})
    out = tmp_path / "huge.npz"
    with zipfile.ZipFile(out, "w") as zf:
        for k, v in arrays.items():
            if k != "coef":
                b = io.BytesIO()
                np.save(b, v)
                zf.writestr(k + ".npy", b.getvalue())
        zf.writestr("coef.npy", buf.getvalue() + b"\0" * 64)
    msg = _expect(out, None, "not a readable softmaxkit model file")
    assert "'coef' declares shape (3, 10000000000000)" in msg


def test_unknown_and_compressed_bombs_are_not_read(tmp_path, good):
    """An unknown member holding 100 MB of compressed zeros costs nothing to load, and
    a known member that inflates past what its header declares is never read past it."""
    path, est, X = good
    arrays = _members(path)
    out = tmp_path / "bomb.npz"
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in arrays.items():
            b = io.BytesIO()
            np.save(b, v)
            zf.writestr(k + ".npy", b.getvalue())
        with zf.open("junk.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_1_0(
                fh, {"descr": "<f8", "fortran_order": False, "shape": (12_500_000,)})
            chunk = bytes(1 << 20)
            for _ in range(100):
                fh.write(chunk)
    assert out.stat().st_size < 1_000_000
    tracemalloc.start()
    back = SoftmaxRegression.load(out)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path, good):
    path, est, _ = good
    out = tmp_path / "m.npz"
    out.write_bytes(b"old contents")
    with pytest.raises(ValueError, match="JSON-serialisable"):
        est.save(out, metadata={"x": object()})
    assert out.read_bytes() == b"old contents"
    est.save(out)
    assert SoftmaxRegression.load(out).classes_.size == 3
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]  # no temporary left behind
