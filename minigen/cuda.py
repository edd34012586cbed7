"""PyTorch's ``torch.cuda`` queries and legacy types, so ``torch.cuda.is_available()`` lines
port unchanged. ``FloatTensor`` and friends are the CPU ones: ``.to("cuda")`` moves data."""
from minigen.accelerator import device_count, is_available  # noqa: F401
from minigen.backend import manual_seed
from minigen.legacy import DoubleTensor, FloatTensor, LongTensor  # noqa: F401

manual_seed_all = manual_seed
