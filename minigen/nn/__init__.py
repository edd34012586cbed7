"""Neural-network modules (``import minigen.nn as nn``); ``nn.init``, ``nn.utils``,
``nn.parallel`` and ``nn.functional`` (which is ``minigen.functional``) as in PyTorch
(``nn.parallel`` is imported on first use)."""
import importlib
import sys

from minigen import functional
from minigen.nn import init, utils
from minigen.nn.attention import MultiheadAttention, SelfAttention2d
from minigen.nn.conv import Conv1d, Conv2d, ConvTranspose2d
from minigen.nn.embedding import Embedding, SinusoidalEmbedding
from minigen.nn.encoder import UNetEncoder
from minigen.nn.fourier import FourierFeatures
from minigen.nn.layers import (
    CELU,
    GELU,
    SELU,
    Dropout,
    Flatten,
    Identity,
    Hardsigmoid,
    Hardswish,
    LeakyReLU,
    Linear,
    Mish,
    ModuleDict,
    ModuleList,
    ReLU,
    ReLU6,
    Sequential,
    Sigmoid,
    SiLU,
    Softsign,
    Tanh,
    Upsample,
)
from minigen.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss
from minigen.nn.mlp import MLP, make_activation
from minigen.nn.models import build_model
from minigen.nn.module import Module, Parameter
from minigen.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from minigen.nn.pool import AvgPool2d, MaxPool2d
from minigen.nn.transformer import TextEncoder, TransformerBlock
from minigen.nn.unet import UNet

sys.modules[f"{__name__}.functional"] = functional  # import minigen.nn.functional as F


def __getattr__(name):
    if name == "parallel":
        return importlib.import_module(f"minigen.nn.{name}")
    raise AttributeError(f"module 'minigen.nn' has no attribute {name!r}")
