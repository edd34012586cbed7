"""Text-to-image diffusion in a learned latent space, Stable Diffusion in miniature (Rombach
et al. 2022): a text encoder and a cross-attention UNet trained jointly in the latent space
of :mod:`minigen.vae.autoencoder`, classifier-free guidance on the caption, image-to-image
with a prompt (SDEdit) and inpainting (the inpainting model, or RePaint).

- :mod:`~minigen.txt2img.model`: eps_theta(z_t, t, tau_theta(y)), ``TextConditionedUNet``;
- :mod:`~minigen.txt2img.trainer`: ``Txt2ImgTrainer``, ``train_txt2img``, ``load_txt2img``;
- :mod:`~minigen.txt2img.pipeline`: ``TextToImage`` (``sample``, ``edit``, ``inpaint``);
- :mod:`~minigen.txt2img.masks`: the masks of inpainting in latent space;
- :mod:`~minigen.txt2img.text`: the captioned data, tokenizer and text encoder it uses.
"""
from minigen.txt2img.model import TextConditionedUNet
from minigen.txt2img.pipeline import PixelSpace, TextToImage
from minigen.txt2img.trainer import Txt2ImgTrainer, load_txt2img, train_txt2img

__all__ = ["PixelSpace", "TextConditionedUNet", "TextToImage", "Txt2ImgTrainer",
           "load_txt2img", "train_txt2img"]
