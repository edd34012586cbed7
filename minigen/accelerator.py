"""PyTorch's ``torch.accelerator`` queries over minigen's devices (strings): the one
accelerator minigen knows is CUDA, through CuPy."""
from minigen import backend


def is_available():
    return backend.cuda_available()


def current_accelerator():
    """``"cuda"`` when a GPU is usable (pass it to ``.to()``), else None, as in PyTorch."""
    return "cuda" if is_available() else None


def device_count():
    return backend.cupy().cuda.runtime.getDeviceCount() if is_available() else 0
