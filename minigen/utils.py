"""``torch.utils``'s one everyday name: ``utils.data`` is ``minigen.data`` (``DataLoader``,
``Dataset``, ``TensorDataset``), also as ``import minigen.utils.data``."""
import sys

from minigen import data

sys.modules[f"{__name__}.data"] = data
