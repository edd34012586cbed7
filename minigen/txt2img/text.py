"""The text half of text-to-image as this package uses it: the captioned shapes data
(:func:`minigen.data.load_captioned`), the word-level tokenizer of their grammar
(:class:`minigen.tokenizer.Tokenizer`) and the transformer text encoder tau_theta
(:class:`minigen.nn.TextEncoder`), each behind one function."""
from minigen import data as datasets
from minigen.nn import TextEncoder
from minigen.tokenizer import Tokenizer


def tokenizer():
    """The word-level tokenizer of the shapes grammar."""
    return Tokenizer.for_shapes()


def encoder(tokenizer, dim, layers, heads):
    """A new text encoder: token ids (N, L) -> (embeddings (N, L, dim), padding mask)."""
    return TextEncoder(len(tokenizer), tokenizer.max_length, dim=dim, depth=layers,
                       heads=heads, pad_id=tokenizer.pad_id)


def encode(tokenizer, captions):
    """Token ids (N, L) int64 of ``captions`` (an unknown word is a one-line error naming the
    vocabulary)."""
    return tokenizer(list(captions))


def null_condition(tokenizer):
    """The token ids (L,) of the empty caption, the null condition."""
    return tokenizer("")[0]


def training_data(data, n, seed):
    """``(images, captions, name)``: ``n`` training scenes of a captioned set (``"shapes"``,
    its ``"train"`` split: no held-out composition) drawn from ``seed``, or a given pair
    (images in [-1, 1], captions) with name None."""
    if isinstance(data, str):
        images, captions = datasets.load_captioned(data, n, seed, "train")
        return images, captions, data
    images, captions = data
    return images, list(captions), None
