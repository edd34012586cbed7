"""``Minibatch``: one process's part of the minibatches of a training loop, so that an
algorithm's code reads the same for one process and for P of them (data parallelism).

A step of minibatch SGD draws a minibatch of m examples, computes the mean loss, its
gradient and an update. With P processes (:mod:`minigen.distributed`) each one draws the
*whole* minibatch from the shared random stream (so the stream, and a checkpoint of it, is
the same at any P), keeps its rows, computes the mean loss over them, and the gradients are
summed over the processes, each weighted by its share of the rows, before the update; the
update then equals the one-process update up to the order of floating-point sums. The
algorithm only draws through a ``Minibatch`` and steps its optimizers through it:

- draws: :meth:`integers`, :meth:`random`, :meth:`standard_normal`, :meth:`uniform` take
  the arguments of ``numpy.random.Generator``'s; a ``size`` whose first axis is m (or this
  process's row count) is a draw for the minibatch: m rows are drawn and this process's are
  returned. A ``Minibatch`` can be passed where a Generator is expected (``ddpm.loss(x0,
  seed=minibatch)``);
- :meth:`best`: the k highest scores of the whole minibatch (e.g. top-k training);
- :meth:`step`: sum the gradients over the processes with this process's weight (its share
  of the rows drawn or chosen last), then step the optimizer; :meth:`mean`: the metrics of
  the whole minibatch.

Rows go to processes in whole groups of ``group`` consecutive rows (PacGAN packs). With one
process every method is the plain one: draws from ``backend.rng()``, nothing summed.
"""
from minigen import backend, distributed


class Minibatch:
    """This process's part of every minibatch of ``m`` rows over the processes of ``comm``
    (default :func:`minigen.distributed.world`), in groups of ``group`` rows."""

    def __init__(self, m, group=1, comm=None):
        self.m, self.group = int(m), int(group)
        self.comm = distributed.world() if comm is None else comm
        self.rows, self.share = distributed.packed_shard(self.m, self.group, self.comm)
        self.count = self.rows.stop - self.rows.start
        self.weight = self.share  # of the rows drawn or chosen last: see step()

    # --- draws ----------------------------------------------------------------------------
    def _draw(self, method, size, *args, **kwargs):
        shape = (size,) if isinstance(size, int) else tuple(size or ())
        if not shape or shape[0] not in (self.m, self.count):
            return getattr(backend.rng(), method)(*args, size=size, **kwargs)
        drawn = getattr(backend.rng(), method)(*args, size=(self.m, *shape[1:]), **kwargs)
        self.weight = self.share
        return drawn[self.rows]

    def integers(self, low, high=None, size=None, dtype="int64"):
        return self._draw("integers", size, low, high, dtype=dtype)

    def random(self, size=None, dtype="float64"):
        return self._draw("random", size, dtype=dtype)

    def standard_normal(self, size=None, dtype="float64"):
        return self._draw("standard_normal", size, dtype=dtype)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._draw("uniform", size, low, high)

    # --- over the whole minibatch ---------------------------------------------------------
    def best(self, scores, k):
        """Indices into this process's ``scores`` (one per group of rows) of those among the
        k highest of the whole minibatch; :attr:`weight` becomes their count / k. A process
        holding none of them gets its best one at weight 0 (no empty mean)."""
        xp = backend.xp_of(scores)
        if self.comm.size == 1:
            self.weight = 1.0
            return xp.argsort(-scores)[:k]
        everyone = xp.zeros(self.m // self.group, dtype=scores.dtype)
        start, stop = self.rows.start // self.group, self.rows.stop // self.group
        everyone[start:stop] = scores
        chosen = xp.argsort(-self.comm.allreduce_(everyone))[:k]
        mine = chosen[(chosen >= start) & (chosen < stop)] - start
        self.weight = len(mine) / k
        return mine if len(mine) else xp.argsort(-scores)[:1]

    def reduce(self, model):
        """Sum ``model``'s gradients over the processes, each weighted by :attr:`weight`:
        the gradient of the whole minibatch's mean loss."""
        distributed.allreduce_gradients(model, self.comm, weight=self.weight)

    def step(self, optimizer, model):
        """:meth:`reduce` ``model``'s gradients, then ``optimizer.step()``."""
        self.reduce(model)
        optimizer.step()

    def mean(self, metrics):
        """``{name: value}`` of the whole minibatch from this process's means (weighted by
        :attr:`weight`)."""
        return distributed.weighted_sum(metrics, self.weight, self.comm)
