"""``torch.backends.cudnn``'s settings, accepted and ignored: minigen's GPU path uses CuPy and
its own kernels, not cuDNN."""
benchmark = False
deterministic = False
enabled = True


def is_available():
    return False
