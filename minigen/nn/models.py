"""Rebuilding a model from its class name and ``.config`` (checkpoints, the CLI)."""
from minigen.errors import InvalidInput
from minigen.nn.encoder import UNetEncoder
from minigen.nn.mlp import MLP
from minigen.nn.unet import UNet

MODELS = {"MLP": MLP, "UNet": UNet, "UNetEncoder": UNetEncoder}


def build_model(class_name, config):
    """A new ``class_name`` model built from ``config`` (the dict a model keeps as ``.config``:
    its constructor arguments; lists from JSON are accepted for tuples)."""
    if class_name not in MODELS:
        raise InvalidInput(
            f"build_model: unknown model class {class_name!r}; known classes are {sorted(MODELS)}"
        )
    return MODELS[class_name](**dict(config))
