"""Simulated crashes of a training run, for the resume tests."""
import pytest


def crash_at(trainer, step):
    """Run ``trainer.fit()`` until it reaches ``step``, where a KeyboardInterrupt stops it as
    a power cut would: the checkpoints written before then are all that is left."""
    train_step = trainer.train_step

    def crashing(s):
        if s == step:
            raise KeyboardInterrupt("power cut")
        return train_step(s)

    trainer.train_step = crashing
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
