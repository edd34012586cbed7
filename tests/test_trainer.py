"""The shared Trainer: exact resume, divergence detection, files it writes."""
import json

import numpy as np
import pytest

import minigen as mg
import minigen.functional as F
from minigen import backend, checkpoint, nn, optim
from minigen.trainer import Trainer, TrainingDiverged
from tests.crash import crash_at

X = np.random.default_rng(0).standard_normal((64, 3)).astype(np.float32)
Y = X @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32) + 0.3


class LinearFit(Trainer):
    """Least squares on random minibatches drawn from minigen's generator; Adam + EMA.
    ``poison_at``: the step whose batch is NaN (to test divergence)."""

    kind = "toy"

    def __init__(self, out_dir, steps, poison_at=None, **kwargs):
        super().__init__(out_dir, steps, config={"lr": 0.3}, **kwargs)
        self.model = nn.Linear(3, 1)
        self.opt = optim.Adam(self.model, lr=0.3)
        self.ema = optim.EMA(self.model, decay=0.9)
        self.poison_at = poison_at
        self.checkpoints = []

    def train_step(self, step):
        self.opt.lr = optim.warmup_cosine(step, 0.3, 5, 40)  # not self.steps: resume may extend
        idx = backend.rng().integers(0, len(X), size=16)
        x = X[idx] * (np.nan if step == self.poison_at else 1)
        loss = F.mse_loss(self.model(mg.tensor(x)), mg.tensor(Y[idx]))
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.ema.update()
        return {"loss": loss.item(), "lr": self.opt.lr}

    def state(self):
        return {"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                "ema": self.ema.state_dict()}

    def load_state(self, state):
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.ema.load_state_dict(state["ema"])

    def on_checkpoint(self, step):
        self.checkpoints.append(step)
        backend.rng().standard_normal(100)  # e.g. sampling for a figure


def full_data_mse(model):
    return float(((X @ model.weight.data.T + model.bias.data - Y) ** 2).mean())


def final_state(trainer):
    return {**trainer.model.state_dict(), **{f"ema.{k}": v for k, v in trainer.ema.shadow.items()}}


def assert_bit_identical(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_fit_learns_and_writes_files(tmp_path):
    t = LinearFit(tmp_path, 60, checkpoint_every=25, progress=False)
    initial = full_data_mse(t.model)
    history = t.fit()
    assert full_data_mse(t.model) < 0.1 * initial
    assert t.step == 60 and t.checkpoints == [25, 50, 60]
    assert history["step"] == list(range(60)) and len(history["loss"]) == 60
    assert json.loads((tmp_path / "history.json").read_text()) == history
    config = json.loads((tmp_path / "config.json").read_text())
    assert config == {"kind": "toy", "seed": 0, "steps": 60, "lr": 0.3}
    saved = checkpoint.load(tmp_path / "checkpoint.npz")
    assert saved["step"] == 60 and saved["config"] == config
    assert np.array_equal(saved["model"]["weight"], t.model.weight.data)


def test_seed_fixes_initialization(tmp_path):
    a, b = LinearFit(tmp_path, 1, seed=5), LinearFit(tmp_path, 1, seed=5)
    c = LinearFit(tmp_path, 1, seed=6)
    assert np.array_equal(a.model.weight.data, b.model.weight.data)
    assert not np.array_equal(a.model.weight.data, c.model.weight.data)


def test_resume_is_bit_exact(tmp_path):
    full = LinearFit(tmp_path / "full", 40, seed=1, checkpoint_every=8, progress=False)
    full.fit()

    first = LinearFit(tmp_path / "parts", 20, seed=1, checkpoint_every=8, progress=False)
    first.fit()  # stops at 20 (checkpoints at 8, 16 and 20)
    second = LinearFit(tmp_path / "parts", 40, seed=1, checkpoint_every=8, progress=False).resume()
    assert second.step == 20
    second.fit()
    assert_bit_identical(final_state(second), final_state(full))
    assert second.history == full.history
    assert second.ema.num_updates == 40 and second.opt.state["weight"]["step"] == 40


def test_resume_after_crash_is_bit_exact(tmp_path):
    full = LinearFit(tmp_path / "full", 30, seed=2, checkpoint_every=10, progress=False)
    full.fit()

    crash_at(LinearFit(tmp_path / "crash", 30, seed=2, checkpoint_every=10, progress=False), 17)
    resumed = LinearFit(tmp_path / "crash", 30, seed=2, checkpoint_every=10, progress=False)
    resumed.resume()
    assert resumed.step == 10  # the last checkpoint before the crash
    resumed.fit()
    assert_bit_identical(final_state(resumed), final_state(full))


def test_resume_without_rng_state_would_differ(tmp_path):
    """Guards the test above: the minibatch stream really depends on the restored RNG."""
    full = LinearFit(tmp_path / "full", 20, seed=1, checkpoint_every=10, progress=False)
    full.fit()
    part = LinearFit(tmp_path / "part", 10, seed=1, progress=False)
    part.fit()
    resumed = LinearFit(tmp_path / "part", 20, seed=1, progress=False).resume()
    backend.manual_seed(1)
    resumed.fit()
    assert not np.array_equal(resumed.model.weight.data, full.model.weight.data)


def test_nan_stops_with_clear_error_and_keeps_last_good_checkpoint(tmp_path):
    t = LinearFit(tmp_path, 50, poison_at=23, checkpoint_every=10, progress=False)
    message = r"metric 'loss' is nan at step 23.*last good checkpoint"
    with pytest.raises(TrainingDiverged, match=message):
        t.fit()
    saved = checkpoint.load(tmp_path / "checkpoint.npz")
    assert saved["step"] == 20
    assert all(np.isfinite(v).all() for v in saved["model"].values())
    assert json.loads((tmp_path / "history.json").read_text())["step"] == list(range(23))
    # the run resumes from the good checkpoint (here without the poisoned batch)
    fixed = LinearFit(tmp_path, 50, checkpoint_every=10, progress=False).resume()
    fixed.fit()
    assert fixed.step == 50 and np.isfinite(fixed.history["loss"]).all()


def test_inf_metric_before_any_checkpoint(tmp_path):
    class Exploding(LinearFit):
        def train_step(self, step):
            return {"loss": 1.0, "grad_norm": float("inf") if step == 2 else 1.0}

    with pytest.raises(TrainingDiverged, match="'grad_norm' is inf at step 2.*no checkpoint"):
        Exploding(tmp_path, 10, progress=False).fit()
    assert not (tmp_path / "checkpoint.npz").exists()


def test_history_aligns_metrics_reported_sometimes(tmp_path):
    class Sparse(LinearFit):
        def train_step(self, step):
            return {"loss": float(step), **({"fid": 0.5} if step % 2 else {})}

    history = Sparse(tmp_path, 4, progress=False).fit()
    assert history == {"step": [0, 1, 2, 3], "loss": [0.0, 1.0, 2.0, 3.0],
                       "fid": [None, 0.5, None, 0.5]}


def test_progress_bar_shows_metrics(tmp_path, capsys):
    LinearFit(tmp_path, 3, progress=True).fit()
    err = capsys.readouterr().err
    assert "3/3" in err and "loss=" in err


def test_misuse(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.npz"):
        LinearFit(tmp_path, 5).resume()

    class Reserved(LinearFit):
        def state(self):
            return {"step": 1}

    with pytest.raises(ValueError, match=r"reserved keys \['step'\]"):
        Reserved(tmp_path, 2, progress=False).fit()
    with pytest.raises(NotImplementedError, match="train_step"):
        Trainer(tmp_path / "bare", 2, progress=False).fit()
    with pytest.raises(ValueError, match="checkpoint_every"):
        Trainer(tmp_path, 2, checkpoint_every=0)
