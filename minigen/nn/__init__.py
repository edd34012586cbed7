"""Neural-network modules (``import minigen.nn as nn``); ``nn.init``, ``nn.utils``,
``nn.parallel`` and ``nn.functional`` (which is ``minigen.functional``) as in PyTorch
(``nn.utils`` is imported on first use: it re-exports from ``minigen.optim``)."""
import importlib
import sys

from minigen import functional

from minigen.nn import init
from minigen.nn.attention import SelfAttention2d
from minigen.nn.conv import Conv2d, ConvTranspose2d
from minigen.nn.embedding import Embedding, SinusoidalEmbedding
from minigen.nn.fourier import FourierFeatures
from minigen.nn.layers import (
    GELU,
    Dropout,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Tanh,
)
from minigen.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from minigen.nn.mlp import MLP, make_activation
from minigen.nn.models import build_model
from minigen.nn.module import Module, Parameter
from minigen.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from minigen.nn.pool import AvgPool2d, MaxPool2d
from minigen.nn.unet import UNet

sys.modules[f"{__name__}.functional"] = functional  # import minigen.nn.functional as F


def __getattr__(name):
    if name in ("utils", "parallel"):
        return importlib.import_module(f"minigen.nn.{name}")
    raise AttributeError(f"module 'minigen.nn' has no attribute {name!r}")
