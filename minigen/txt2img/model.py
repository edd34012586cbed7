"""The denoiser of text-to-image latent diffusion: eps_theta(z_t, t, tau_theta(y)), a UNet
with cross-attention (:class:`~minigen.nn.UNet` with ``context_dim``) reading the token
embeddings tau_theta(y) of a text encoder trained jointly with it (Rombach et al. 2022,
Sec. 3.3, eq. 3 and the loss after it).

The condition y is a caption's token ids; the empty caption is the null condition that
classifier-free guidance trains with probability p and samples against
(:attr:`TextConditionedUNet.null_condition`, read by the diffusion code's guidance).

For inpainting the Stable Diffusion way the UNet also reads an image condition: the
(downsampled) mask and the latent of the masked image, concatenated to z_t on the channel
axis (``in_channels`` = 2c + 1), set with :meth:`TextConditionedUNet.conditioned_on`.
"""
from contextlib import contextmanager

import numpy as np

from minigen import backend
from minigen import functional as F
from minigen.errors import InvalidInput
from minigen.nn.module import Module
from minigen.tensor import Tensor


class TextConditionedUNet(Module):
    """``forward(z_t, t, y)``: ``encoder`` maps the token ids y (N, L) to embeddings (N, L, d)
    and a padding mask (N, L), which ``unet`` (``context_dim`` = d) attends to; y = None is
    the null condition (the empty caption, ``null_condition``, (L,) token ids) for the
    whole batch."""

    def __init__(self, encoder, unet, null_condition):
        self.encoder, self.unet = encoder, unet
        self.null_condition = np.asarray(null_condition, dtype=np.int64)
        self.image_condition = None

    @contextmanager
    def conditioned_on(self, image_condition):
        """Within the block the UNet's input is [z_t, ``image_condition``] on the channel
        axis (the mask and masked-image latent of inpainting, (n, c + 1, h, w); a batch of
        k n rows, as classifier-free guidance makes, repeats it k times)."""
        self.image_condition = image_condition
        try:
            yield self
        finally:
            self.image_condition = None

    def forward(self, x, t, y=None):
        if y is None:
            y = np.broadcast_to(self.null_condition, (x.shape[0], len(self.null_condition)))
        context, mask = self.encoder(y)
        if self.image_condition is not None:
            x = F.cat([x, Tensor(_repeat_rows(self.image_condition, x.shape[0]))], axis=1)
        return self.unet(x, t, context=context, context_mask=mask)


def _repeat_rows(condition, batch):
    """``condition`` (n, ...) repeated to ``batch`` = k n rows."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    if batch % len(condition):
        raise InvalidInput(f"TextConditionedUNet: image condition of {len(condition)} rows for a "
                           f"batch of {batch}")
    return backend.xp_of(condition).concatenate([condition] * (batch // len(condition)))
