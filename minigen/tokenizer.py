"""A word-level tokenizer: a caption becomes a row of integer token ids for a text encoder.

The vocabulary is fixed when the tokenizer is made (``Tokenizer.for_shapes()`` takes the
caption grammar's words from :mod:`minigen.shapes`). Id 0 is ``<pad>``, id 1 ``<bos>``: every
row starts with ``<bos>`` and is padded with ``<pad>`` to ``max_length``, so the empty
caption is ``[<bos>, <pad>, ...]``, a valid input (the null condition of classifier-free
guidance) that still has one token to attend to. A word outside the vocabulary is an error
naming it and listing the vocabulary: a model must never see a caption with words silently
dropped.

    tok = Tokenizer.for_shapes()
    ids = tok(["a small red circle on the left", ""])   # (2, tok.max_length) int64
    padding_mask = ids == tok.pad_id                     # True on padding (PyTorch's key_padding_mask)
    tok.decode(ids) == ["a small red circle on the left", ""]
"""
from __future__ import annotations

import numpy as np

from minigen import shapes
from minigen.errors import InvalidInput


class Tokenizer:
    """Captions (lower-cased, split on white space) -> token ids (N, max_length) int64."""

    PAD, BOS = "<pad>", "<bos>"
    pad_id, bos_id = 0, 1

    def __init__(self, words, max_words: int):
        words = sorted(set(words))
        if not words or any(not w or w != w.lower() or len(w.split()) != 1 for w in words):
            raise InvalidInput(f"Tokenizer: words must be non-empty lower-case words, got {words}")
        self.vocabulary = (self.PAD, self.BOS, *words)
        self.ids = {w: i for i, w in enumerate(self.vocabulary)}
        self.max_length = 1 + int(max_words)

    @classmethod
    def for_shapes(cls) -> Tokenizer:
        """The tokenizer of the captioned-shapes grammar."""
        return cls(shapes.VOCABULARY, shapes.MAX_WORDS)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def encode(self, caption: str) -> list:
        """One caption's ids, without padding: ``<bos>`` then one id per word."""
        words = caption.lower().split()
        for w in words:
            if w not in self.ids:
                raise InvalidInput(f"Tokenizer: unknown word {w!r} in {caption!r}; the vocabulary "
                                   f"is: {' '.join(self.vocabulary[2:])}")
        if len(words) > self.max_length - 1:
            raise InvalidInput(f"Tokenizer: {caption!r} has {len(words)} words, more than the "
                               f"{self.max_length - 1} this tokenizer holds")
        return [self.bos_id] + [self.ids[w] for w in words]

    def __call__(self, captions, length: int | None = None) -> np.ndarray:
        """Ids (N, length) int64 of a caption or a list of captions, padded with ``<pad>`` to
        ``length`` (default ``max_length``)."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        length = self.max_length if length is None else int(length)
        if length < self.max_length:
            raise InvalidInput(f"Tokenizer: length {length} is shorter than max_length "
                               f"{self.max_length}")
        ids = np.full((len(captions), length), self.pad_id, np.int64)
        for row, caption in zip(ids, captions):
            tokens = self.encode(caption)
            row[:len(tokens)] = tokens
        return ids

    def decode(self, ids) -> list:
        """The captions of rows of ids (``<bos>`` and ``<pad>`` dropped)."""
        return [" ".join(self.vocabulary[i] for i in row if i > self.bos_id)
                for row in np.asarray(ids)]
