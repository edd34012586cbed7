"""Checkpoint files: bit-exact round trip of nested state, clear errors, atomic writes."""
import os
import tempfile
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigen import backend, checkpoint, nn


def nested_state():
    backend.manual_seed(3)
    backend.rng().standard_normal(5)  # a generator state somewhere in its stream
    model = nn.Sequential(nn.Linear(3, 4), nn.SiLU(), nn.Linear(4, 2))
    return {
        "model": model.state_dict(),
        "step": 1200,
        "rng": backend.get_rng_state(),  # PCG64 state: ints beyond 64 bits
        "config": {"kind": "ddpm", "lr": 2e-4, "betas": [0.9, 0.999], "name": "s-curve",
                   "clip": None, "flag": True},
        "arrays": [np.arange(6, dtype=np.int64).reshape(2, 3), np.array([np.nan, -np.inf, 1e-45]),
                   np.zeros((0, 4), dtype=np.float16), np.array(True)],
        "scalars": {"f32": np.float32(1.1), "i8": np.int8(-3), "inf": float("inf")},
        "empty": {},
        "deep": {"a": {"b": {"c": [1, [2, {"d": np.ones(2, dtype=np.float32)}]]}}},
    }


def assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert type(b) is type(a) and b.dtype == a.dtype and b.shape == a.shape, where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where  # bit-exact, NaNs too
    else:
        assert type(b) is type(a) and (b == a or (a != a and b != b)), where


def test_round_trip_is_bit_exact(tmp_path):
    state = nested_state()
    path = tmp_path / "ckpt.npz"
    checkpoint.save(state, path)
    loaded = checkpoint.load(path)
    assert_same(state, loaded)
    # the restored RNG state continues the same stream
    expected = backend.rng().standard_normal(4)
    backend.manual_seed(99)
    backend.set_rng_state(loaded["rng"])
    assert np.array_equal(backend.rng().standard_normal(4), expected)


ARRAYS = hnp.arrays(
    st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_, np.complex64]),
    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
)
LEAVES = (st.none() | st.booleans() | st.integers(-2**130, 2**130) | st.text(max_size=5)
          | st.floats(allow_nan=False) | ARRAYS)
KEYS = st.text(min_size=1, max_size=6).filter(
    lambda k: not any(c in k for c in "/\\\0") and not k.startswith("__"))
STATES = st.dictionaries(KEYS, st.recursive(
    LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8), max_size=4)


@given(STATES)
def test_round_trip_of_any_nested_state(state):
    with tempfile.TemporaryDirectory() as d:
        checkpoint.save(state, os.path.join(d, "c.npz"))
        assert_same(state, checkpoint.load(os.path.join(d, "c.npz")))


def test_file_is_a_plain_npz_with_readable_names(tmp_path):
    checkpoint.save({"model": {"layers.0.weight": np.ones((2, 2))}, "step": 3}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz") as npz:
        assert sorted(npz.files) == [checkpoint.META_KEY, "model/layers.0.weight"]
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_names_that_savez_would_choke_on(tmp_path):
    state = {"file": np.ones(2), "allow_pickle": np.zeros(1), "args": {"kwds": np.arange(3)}}
    checkpoint.save(state, tmp_path / "c.npz")
    assert_same(state, checkpoint.load(tmp_path / "c.npz"))


def test_tuples_come_back_as_lists(tmp_path):
    checkpoint.save({"betas": (0.5, 0.9)}, tmp_path / "c.npz")
    assert checkpoint.load(tmp_path / "c.npz") == {"betas": [0.5, 0.9]}


@pytest.mark.parametrize("state, error, message", [
    ([1, 2], TypeError, "must be a dict"),
    ({"m": nn.Linear(2, 2)}, TypeError, "cannot store Linear at 'm'"),
    ({"a": {1: 2}}, TypeError, "keys must be str"),
    ({"a": {"x/y": 2}}, ValueError, "invalid key 'x/y' at 'a'"),
    ({"a": [{"x\0": 2}]}, ValueError, r"invalid key 'x\\x00' at 'a/0'"),
    ({checkpoint.META_KEY: 1}, ValueError, "invalid key"),
    ({"o": np.array([None])}, TypeError, "dtype object"),
])
def test_unsavable_state(state, error, message, tmp_path):
    with pytest.raises(error, match=message):
        checkpoint.save(state, tmp_path / "c.npz")
    assert not os.listdir(tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        checkpoint.load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(nested_state(), path)
    data = path.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 30):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"c\.npz.*(truncated|corrupt)"):
            checkpoint.load(path)


def test_corrupt_member(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save({"w": np.arange(1000.0)}, path)
    data = bytearray(path.read_bytes())
    data[200:260] = bytes(60)  # inside the array's data: the zip CRC check fails
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"c\.npz"):
        checkpoint.load(path)


def test_random_bytes(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(ValueError, match="junk.npz"):
        checkpoint.load(path)


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "foreign.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="foreign.npz.*not written by minigen"):
        checkpoint.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match="single.npy"):
        checkpoint.load(tmp_path / "single.npy")
    with zipfile.ZipFile(tmp_path / "fake.npz", "w") as z:  # right entry name, wrong content
        z.writestr(checkpoint.META_KEY + ".npy", b"not an array")
    with pytest.raises(ValueError, match="fake.npz"):
        checkpoint.load(tmp_path / "fake.npz")


def test_newer_format_version(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 99)
    checkpoint.save({"a": 1}, tmp_path / "c.npz")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="version 99"):
        checkpoint.load(tmp_path / "c.npz")


@pytest.mark.parametrize("target", ["write_array", "replace"])
def test_crash_mid_write_keeps_previous_checkpoint(target, tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save({"w": np.ones(3), "step": 1}, path)

    def crash(*args, **kwargs):
        if target == "write_array":  # die after part of the file is written
            args[0].write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt("killed")

    if target == "write_array":
        monkeypatch.setattr(np.lib.format, "write_array", crash)
    else:
        monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save({"w": np.zeros(3), "step": 2}, path)
    monkeypatch.undo()
    loaded = checkpoint.load(path)
    assert loaded["step"] == 1 and np.array_equal(loaded["w"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # the temporary was removed


@pytest.mark.gpu
@pytest.mark.skipif(not backend.cuda_available(), reason="needs CuPy and a CUDA GPU")
def test_gpu_arrays_are_saved_without_moving_them(tmp_path):
    live = backend.to_device(np.arange(6, dtype=np.float32).reshape(2, 3), "cuda")
    checkpoint.save({"w": live}, tmp_path / "c.npz")
    assert backend.device_of(live) == "cuda"
    loaded = checkpoint.load(tmp_path / "c.npz")["w"]
    assert isinstance(loaded, np.ndarray) and np.array_equal(loaded, backend.to_numpy(live))


def test_overwrite_and_parent_creation(tmp_path):
    path = tmp_path / "run" / "sub" / "c.npz"
    checkpoint.save({"step": 1}, path)
    checkpoint.save({"step": 2}, path)
    assert checkpoint.load(path) == {"step": 2}
