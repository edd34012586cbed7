"""The multilayer perceptron: the 2-D diffusion denoiser and the GAN generator/discriminator.

As a denoiser (``time_dim`` set) it sees [x, SinusoidalEmbedding(t)] concatenated, the input
of the small 2-D DDPM demos; without ``time_dim`` it is a plain MLP (GAN G and D). With
``num_classes`` a learned class embedding joins the concatenation (class-conditional
denoisers for classifier-free guidance).
"""
import numpy as np

from minigen import functional as F
from minigen.creation import DEFAULT_DTYPE
from minigen.errors import InvalidInput
from minigen.nn.embedding import Embedding, SinusoidalEmbedding, as_batch_array
from minigen.nn.fourier import FourierFeatures
from minigen.nn.layers import GELU, LeakyReLU, Linear, ReLU, SiLU, Tanh
from minigen.nn.module import Module

ACTIVATIONS = {
    "silu": SiLU,
    "relu": ReLU,
    "leaky_relu": lambda: LeakyReLU(0.2),  # the GAN convention (Radford et al. 2015, sec. 3)
    "tanh": Tanh,
    "gelu": GELU,
}


def make_activation(name):
    """A new activation module by name: silu, relu, leaky_relu (slope 0.2), tanh, gelu."""
    if name not in ACTIVATIONS:
        raise InvalidInput(
            f"make_activation: unknown activation {name!r}; valid names are {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]()


class MLP(Module):
    """in_features (+ time_dim) -> hidden[0] -> ... -> hidden[-1] -> out_features, with
    ``activation`` after every hidden layer and none on the output (logits / noise / samples).

    ``forward(x, t=None, y=None)``: x (batch, in_features); with ``time_dim``, t (batch,)
    integer or float timesteps, embedded sinusoidally and concatenated to x. With
    ``fourier_features`` m, x is first expanded to [x, sin(2^k x), cos(2^k x)], k < m
    (:class:`FourierFeatures`, Tancik et al. 2020): the 2-D denoiser then resolves sharp
    edges. With ``num_classes`` = K (needs ``time_dim``), y (batch,) labels in 0..K-1, or K,
    the "null" class of classifier-free guidance, embedded in ``time_dim`` learned dimensions
    and concatenated too; ``y=None`` means the null class for the whole batch (as in the UNet).
    """

    def __init__(self, in_features, out_features, hidden=(128, 128, 128), activation="silu",
                 time_dim=None, num_classes=None, dtype=DEFAULT_DTYPE, device="cpu",
                 fourier_features=None):
        hidden = tuple(int(h) for h in hidden)
        self.act = make_activation(activation)
        if min((in_features, out_features) + hidden) < 1:
            raise InvalidInput(
                f"MLP: sizes must be >= 1, got in_features {in_features}, hidden {hidden}, "
                f"out_features {out_features}"
            )
        if num_classes is not None and (time_dim is None or num_classes < 1):
            raise InvalidInput(f"MLP: num_classes must be >= 1 and needs time_dim, got "
                             f"num_classes {num_classes}, time_dim {time_dim}")
        self.config = dict(in_features=in_features, out_features=out_features, hidden=hidden,
                           activation=activation, time_dim=time_dim, dtype=np.dtype(dtype).name)
        # optional keys only when set, so older checkpoints' configs stay equal
        if num_classes is not None:
            self.config["num_classes"] = num_classes
        if fourier_features is not None:
            self.config["fourier_features"] = fourier_features
        self.in_features, self.time_dim, self.num_classes = in_features, time_dim, num_classes
        self.embed = None if time_dim is None else SinusoidalEmbedding(time_dim, dtype)
        self.fourier = None if fourier_features is None else FourierFeatures(fourier_features,
                                                                             dtype)
        self.class_embed = (None if num_classes is None
                            else Embedding(num_classes + 1, time_dim, dtype=dtype, device=device))
        width = in_features if self.fourier is None else self.fourier.out_features(in_features)
        label_dim = 0 if num_classes is None else time_dim
        sizes = (width + (time_dim or 0) + label_dim,) + hidden + (out_features,)
        self.layers = [
            Linear(a, b, dtype=dtype, device=device) for a, b in zip(sizes[:-1], sizes[1:])
        ]

    def forward(self, x, t=None, y=None):
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise InvalidInput(f"MLP: expected x of shape (batch, {self.in_features}), got {x.shape}")
        if self.fourier is not None:
            x = self.fourier(x)
        if self.time_dim is not None:
            if t is None:
                raise InvalidInput("MLP: this model is time-conditioned (time_dim set): pass t")
            emb = self.embed(t, device=x.device)
            if emb.shape[0] != x.shape[0]:
                raise InvalidInput(f"MLP: t has {emb.shape[0]} entries but x has {x.shape[0]} rows")
            x = F.cat([x, emb] + self._label_embedding(y, x.shape[0]), axis=1)
        elif t is not None:
            raise InvalidInput("MLP: t given but the model has no time embedding (time_dim=None)")
        for layer in self.layers[:-1]:
            x = self.act(layer(x))
        return self.layers[-1](x)

    def _label_embedding(self, y, batch):
        """[class embedding of y] for a class-conditional MLP, [] otherwise."""
        if self.class_embed is None:
            if y is not None:
                raise InvalidInput("MLP: labels y given but the model is unconditional "
                                 "(num_classes=None)")
            return []
        y = np.full(batch, self.num_classes) if y is None else as_batch_array(y, "MLP")
        if y.shape[0] != batch:
            raise InvalidInput(f"MLP: y has {y.shape[0]} entries but x has {batch} rows")
        return [self.class_embed(y)]

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.config.items())
