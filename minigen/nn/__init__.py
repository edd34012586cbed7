"""Neural-network modules (``import minigen.nn as nn``)."""
from minigen.nn.layers import (
    GELU,
    Dropout,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    SiLU,
    Tanh,
)
from minigen.nn.module import Module, Parameter
