"""Tests of descluster.io.safe_pickle: only NumPy-array pickles load without trust."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import warnings

import numpy as np
import pandas as pd
import pytest

from descluster.errors import CaseError, UnsafePickleError
from descluster.io.safe_pickle import load_array


def _dump(path, obj, protocol=pickle.HIGHEST_PROTOCOL):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=protocol)
    return path


def as_numpy1_pickle(data: bytes) -> bytes:
    """Rewrite a NumPy-2 pickle as NumPy 1.x writes it (``numpy.core`` instead of ``numpy._core``).

    Opcodes are re-emitted one by one: FRAME opcodes are dropped (framing is
    optional for readers) and string opcodes are re-encoded with their new
    length, so the stream stays well-formed for every protocol.
    """
    out = bytearray()
    ops = list(pickletools.genops(data))
    for k, (op, arg, pos) in enumerate(ops):
        end = ops[k + 1][2] if k + 1 < len(ops) else len(data)
        raw = data[pos:end]
        if op.name == "FRAME":
            continue
        if op.name == "GLOBAL" and "numpy._core" in arg:
            raw = b"c" + arg.replace("numpy._core", "numpy.core").replace(" ", "\n").encode() + b"\n"
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE") and arg.startswith("numpy._core"):
            text = arg.replace("numpy._core", "numpy.core").encode("utf-8")
            raw = (b"\x8c" + bytes([len(text)]) if len(text) < 256 else b"X" + len(text).to_bytes(4, "little")) + text
        out += raw
    return bytes(out)


@pytest.fixture
def matrix():
    rng = np.random.default_rng(0)
    return rng.standard_normal((7, 5)).astype(np.float32)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy2_pickle_loads(tmp_path, matrix, protocol):
    path = _dump(tmp_path / "d.pickle", matrix, protocol)
    assert b"numpy._core" in path.read_bytes()
    out = load_array(path)
    assert out.dtype == np.float32 and out.shape == (7, 5)
    np.testing.assert_array_equal(out, matrix)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy1_pickle_loads_to_same_array(tmp_path, matrix, protocol):
    data = as_numpy1_pickle(pickle.dumps(matrix.astype(np.float64), protocol=protocol))
    assert b"numpy.core" in data and b"numpy._core" not in data
    pickletools.dis(data, out=io.StringIO())  # well-formed stream
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning from the numpy.core shim
        out = load_array(path)
    np.testing.assert_array_equal(out, matrix.astype(np.float64))


def test_fortran_order_and_int_dtype_round_trip(tmp_path):
    a = np.asfortranarray(np.arange(12, dtype=np.int16).reshape(3, 4))
    np.testing.assert_array_equal(load_array(_dump(tmp_path / "f.pickle", a)), a)


def test_list_of_lists_accepted(tmp_path):
    rows = [[1.0, 2, 3], [4, 5.5, 6]]
    out = load_array(_dump(tmp_path / "l.pickle", rows))
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, np.array(rows))


def test_ragged_list_names_file_row_and_length(tmp_path):
    path = _dump(tmp_path / "ragged.pickle", [[1, 2, 3], [4, 5, 6], [7, 8], [9]])
    with pytest.raises(CaseError) as err:
        load_array(path)
    msg = str(err.value)
    assert "ragged.pickle" in msg and "row 2 has 2 values" in msg and "row 0 has 3" in msg


def test_non_numeric_list_names_cell(tmp_path):
    path = _dump(tmp_path / "s.pickle", [[1, 2], [3, "x"]])
    with pytest.raises(CaseError, match=r"s\.pickle.*row 1, column 1 is 'x'"):
        load_array(path)


class _RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", [2, 5])
def test_malicious_pickle_refused_without_side_effect(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = _dump(tmp_path / "evil.pickle", _RunsCommand(marker), protocol)
    with pytest.raises(UnsafePickleError) as err:
        load_array(path)
    msg = str(err.value)
    assert f"{os.system.__module__}.system" in msg and "evil.pickle" in msg
    assert not marker.exists()


def test_array_wrapped_payload_refused(tmp_path):
    """A command hidden inside a list next to real array data is still refused."""
    marker = tmp_path / "pwned"
    path = _dump(tmp_path / "mixed.pickle", [np.zeros((2, 2)), _RunsCommand(marker)])
    with pytest.raises(UnsafePickleError):
        load_array(path)
    assert not marker.exists()


def test_codecs_encode_only_latin1(tmp_path):
    # _codecs.encode("x", "rot13") hand-assembled in protocol 2
    data = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    path = tmp_path / "codec.pickle"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="rot13"):
        load_array(path)


def test_dataframe_refused_then_accepted_with_trust(tmp_path, matrix):
    frame = pd.DataFrame(matrix, columns=[f"f{i}" for i in range(5)])
    path = _dump(tmp_path / "frame.pickle", frame)
    with pytest.raises(UnsafePickleError) as err:
        load_array(path)
    msg = str(err.value)
    assert "pandas" in msg and "--trust-pickle" in msg and "frame.pickle" in msg
    out = load_array(path, trust=True)
    np.testing.assert_array_equal(out, matrix)


def test_truncated_pickle_is_case_error(tmp_path, matrix):
    path = tmp_path / "cut.pickle"
    path.write_bytes(pickle.dumps(matrix)[:40])
    with pytest.raises(CaseError, match=r"cut\.pickle: cannot read pickle"):
        load_array(path)


def test_other_object_refused(tmp_path):
    with pytest.raises(CaseError, match=r"holds a dict"):
        load_array(_dump(tmp_path / "d.pickle", {"a": 1}))
