"""Learning-rate schedulers with PyTorch's names and formulas (``optim.lr_scheduler``): each
sets ``param_groups[g]["lr"]`` of its optimizer from the group's initial lr and a step count.

As in PyTorch, building a scheduler sets the lr of step 0, and ``scheduler.step()`` (after
``optimizer.step()``, once per epoch or per batch as the schedule is meant) advances it. The
lr is the closed form of the step count, so ``state_dict()`` (the count) restores it exactly.
"""
import bisect
import math


class LRScheduler:
    """Base class: ``lr_at(base_lr, step)`` is the schedule; ``base_lrs`` are the groups'
    ``initial_lr`` (set from their lr when the first scheduler is built)."""

    def __init__(self, optimizer, last_epoch=-1):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr, step):
        raise NotImplementedError

    def step(self):
        self.last_epoch += 1
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state):
        self.base_lrs = list(state["base_lrs"])
        self.last_epoch = state["last_epoch"] - 1
        self.step()
        return self


class LambdaLR(LRScheduler):
    """lr = base_lr * lr_lambda(step)."""

    def __init__(self, optimizer, lr_lambda, last_epoch=-1):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, step):
        return base_lr * self.lr_lambda(step)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (step // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, last_epoch=-1):
        if int(step_size) < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, step):
        return base_lr * self.gamma ** (step // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = base_lr * gamma ** (number of milestones <= step)."""

    def __init__(self, optimizer, milestones, gamma=0.1, last_epoch=-1):
        self.milestones, self.gamma = sorted(milestones), gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, step):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, step)


class ExponentialLR(LRScheduler):
    """lr = base_lr * gamma ** step."""

    def __init__(self, optimizer, gamma, last_epoch=-1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, step):
        return base_lr * self.gamma ** step


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) (1 + cos(pi step / T_max)) / 2 (Loshchilov & Hutter
    2017, eq. 5, without restarts)."""

    def __init__(self, optimizer, T_max, eta_min=0.0, last_epoch=-1):  # noqa: N803 (PyTorch's)
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be > 0, got {T_max}")
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, step):
        cosine = (1 + math.cos(math.pi * step / self.T_max)) / 2
        return self.eta_min + (base_lr - self.eta_min) * cosine


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin 2019) in PyTorch's form: the lr goes from
    max_lr / div_factor up to max_lr over the first ``pct_start`` of ``total_steps``, then down
    to max_lr / div_factor / final_div_factor (cosine or linear annealing; ``three_phase`` first
    returns to the start lr); with ``cycle_momentum`` the momentum (SGD's ``momentum``, Adam's
    beta1) moves the other way between ``max_momentum`` and ``base_momentum``."""

    def __init__(self, optimizer, max_lr, total_steps=None, epochs=None, steps_per_epoch=None,
                 pct_start=0.3, anneal_strategy="cos", cycle_momentum=True, base_momentum=0.85,
                 max_momentum=0.95, div_factor=25.0, final_div_factor=1e4, three_phase=False,
                 last_epoch=-1):
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = epochs * steps_per_epoch
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: anneal_strategy must be 'cos' or 'linear', "
                             f"got {anneal_strategy!r}")
        group = optimizer.param_groups[0]
        if cycle_momentum and "momentum" not in group and "betas" not in group:
            raise ValueError("OneCycleLR: cycle_momentum=True needs an optimizer with momentum "
                             "or betas; pass cycle_momentum=False")
        self.total_steps, self.cycle_momentum = total_steps, cycle_momentum
        self.anneal = self._cos if anneal_strategy == "cos" else self._linear
        self.div_factor, self.final_div_factor = div_factor, final_div_factor
        self.momenta = {"initial": max_momentum, "max": base_momentum, "min": max_momentum}
        up = float(pct_start * total_steps) - 1
        if three_phase:
            self.phases = [(up, "initial", "max"), (2 * up, "max", "initial"),
                           (total_steps - 1, "initial", "min")]
        else:
            self.phases = [(up, "initial", "max"), (total_steps - 1, "max", "min")]
        tops = list(max_lr) if isinstance(max_lr, (list, tuple)) else [max_lr]
        for group, top in zip(optimizer.param_groups, tops * len(optimizer.param_groups)):
            group["initial_lr"] = top / div_factor
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _cos(start, end, pct):
        return end + (start - end) / 2 * (math.cos(math.pi * pct) + 1)

    @staticmethod
    def _linear(start, end, pct):
        return (end - start) * pct + start

    def _phase(self, step, levels):
        """The value at ``step`` of the schedule through ``levels`` ({"initial", "max", "min"})."""
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, more than total_steps "
                             f"= {self.total_steps}")
        start = 0.0
        for i, (end, a, b) in enumerate(self.phases):
            if step <= end or i == len(self.phases) - 1:
                return self.anneal(levels[a], levels[b], (step - start) / (end - start))
            start = end

    def lr_at(self, base_lr, step):
        top = base_lr * self.div_factor
        return self._phase(step, {"initial": base_lr, "max": top, "min": base_lr / self.final_div_factor})

    def step(self):
        super().step()
        if self.cycle_momentum:
            momentum = self._phase(self.last_epoch, self.momenta)
            for group in self.optimizer.param_groups:
                if "betas" in group:
                    group["betas"] = (momentum, group["betas"][1])
                else:
                    group["momentum"] = momentum
