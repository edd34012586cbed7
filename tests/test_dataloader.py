"""Dataset / TensorDataset / DataLoader (issue 18): PyTorch's behaviour, seeding by
``mg.manual_seed``, exact resume mid-epoch; ``data.batches`` follows ``mg.manual_seed``."""
import numpy as np
import pytest

import minigen as mg
from minigen.data import DataLoader, Dataset, TensorDataset, batches


def _epoch(loader):
    return [tuple(t.numpy().copy() for t in b) if isinstance(b, tuple) else b.numpy().copy()
            for b in loader]


def test_len_batches_and_tuples_as_pytorch():
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    loader = DataLoader(TensorDataset(mg.tensor(x), y), batch_size=4)
    assert len(loader) == 3 and len(DataLoader(TensorDataset(x), 4, drop_last=True)) == 2
    out = list(loader)
    assert [b[0].shape for b in out] == [(4, 2), (4, 2), (2, 2)]
    assert all(isinstance(t, mg.Tensor) for b in out for t in b)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in out]), y)  # in order
    assert out[0][0].dtype == np.float64 and out[0][1].dtype == np.int64  # dtypes kept
    (only,) = next(iter(DataLoader(TensorDataset(x), 3)))  # one tensor: a 1-tuple, as PyTorch
    assert only.shape == (3, 2)


def test_each_iteration_is_a_new_shuffled_epoch_covering_every_sample():
    loader = DataLoader(TensorDataset(np.arange(10)), batch_size=3, shuffle=True, seed=0)
    epochs = [np.concatenate([b[0].numpy() for b in loader]) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(10))
    assert not np.array_equal(epochs[0], epochs[1])
    again = DataLoader(TensorDataset(np.arange(10)), batch_size=3, shuffle=True, seed=0)
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in again]), epochs[0])


def test_shuffle_without_seed_follows_manual_seed():
    def first_epoch():
        mg.manual_seed(5)
        loader = DataLoader(TensorDataset(np.arange(50)), batch_size=7, shuffle=True)
        return np.concatenate([b[0].numpy() for b in loader])

    np.testing.assert_array_equal(first_epoch(), first_epoch())
    mg.manual_seed(6)
    other = np.concatenate([b[0].numpy() for b in DataLoader(TensorDataset(np.arange(50)), 7, True)])
    assert not np.array_equal(other, first_epoch())


def test_custom_dataset_items_are_stacked():
    class Squares(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(3, i * i, dtype=np.float32), i

    (x, i), *_ = DataLoader(Squares(), batch_size=2)
    np.testing.assert_array_equal(x.numpy(), [[0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(i.numpy(), [0, 1])
    with pytest.raises(NotImplementedError, match="__getitem__"):
        Dataset()[0]


@pytest.mark.parametrize("seed", [3, None])
def test_resume_mid_epoch_is_exact(seed, tmp_path):
    data = TensorDataset(np.arange(23), np.arange(23) * 10)

    def run(stop_at=None, state=None):
        mg.manual_seed(1)
        loader = DataLoader(data, batch_size=4, shuffle=True, seed=seed)
        seen = []
        if state is not None:
            loader.load_state_dict(state["loader"])
            mg.backend.set_rng_state(state["rng"])
        for _ in range(3):
            for batch in loader:
                seen.append(batch[0].numpy().tolist())
                if stop_at is not None and len(seen) == stop_at:
                    mg.save({"s": loader.state_dict()}, tmp_path / "c.npz")  # as a trainer does
                    return seen, {"loader": mg.load(tmp_path / "c.npz")["s"],
                                  "rng": mg.backend.get_rng_state()}
        return seen, None

    full, _ = run()
    assert len(full) == 18
    for stop in (2, 6, 9):  # mid-epoch, at an epoch's end, mid second epoch
        first, state = run(stop_at=stop)
        rest, _ = run(state=state)
        assert first + rest[: len(full) - stop] == full




def test_bad_arguments_and_mismatched_state():
    with pytest.raises(ValueError, match="differ in their first dim"):
        TensorDataset(np.zeros(3), np.zeros(4))
    for bad in (0, 2.5, True, "2"):
        with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
            DataLoader(TensorDataset(np.zeros(3)), bad)
    loader = DataLoader(TensorDataset(np.zeros(5)), 2, shuffle=True, seed=0)
    it = iter(loader)
    next(it)
    with pytest.raises(ValueError, match="covers 5 samples, the dataset has 6"):
        DataLoader(TensorDataset(np.zeros(6)), 2, seed=0).load_state_dict(loader.state_dict())


def test_batches_without_seed_follow_manual_seed():
    mg.manual_seed(0)
    a = next(batches(np.arange(100), 10))
    mg.manual_seed(0)
    np.testing.assert_array_equal(next(batches(np.arange(100), 10)), a)
