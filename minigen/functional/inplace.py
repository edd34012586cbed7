"""In-place fills with PyTorch's names: ``fill_``, ``zero_``, ``normal_``, ``uniform_``.

They overwrite ``x.data`` (the same array, so a Parameter's optimizer state and views stay
valid) and return ``x``. As in PyTorch they are refused on a tensor that requires grad while
gradients are being recorded: the graph would silently use the new values. Wrap them in
``mg.no_grad()`` (what ``nn.init`` does) to initialise parameters. minigen has no version
counters, so the refusal also covers non-leaf tensors, which PyTorch checks later instead.
Random draws come from minigen's generator (``mg.manual_seed``).
"""
from minigen import backend
from minigen.tensor import is_grad_enabled


def _writable(x, op):
    if x.requires_grad and is_grad_enabled():
        kind = "a leaf tensor" if x.creator is None else "a tensor"
        raise RuntimeError(
            f"{op}: {kind} that requires grad cannot be changed in place while gradients are "
            "recorded; wrap the call in `with mg.no_grad():`"
        )
    return x


def fill_(x, value):
    _writable(x, "fill_").data[...] = value
    return x


def zero_(x):
    return fill_(x, 0)


def normal_(x, mean=0.0, std=1.0):
    """Fill with N(mean, std^2) samples."""
    _writable(x, "normal_")
    x.data[...] = mean + std * backend.rng(x.device).standard_normal(x.shape)
    return x


def uniform_(x, a=0.0, b=1.0):
    """Fill with U(a, b) samples."""
    _writable(x, "uniform_")
    x.data[...] = backend.rng(x.device).uniform(a, b, size=x.shape)
    return x
