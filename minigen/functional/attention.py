"""Scaled dot-product attention (Vaswani et al. 2017, eq. 1), composed of the core ops (its
gradients come for free), with PyTorch's signature and mask rules."""
import math

from minigen import backend
from minigen.functional import ops
from minigen.functional.activation import dropout, softmax
from minigen.tensor import Tensor


def _masked_scores(scores, mask):
    """A boolean mask keeps the scores where it is True (the positions that may attend) and
    sets the others to a large negative number; a float mask is added to the scores."""
    raw = mask.data if isinstance(mask, Tensor) else backend.xp_of(scores.data).asarray(mask)
    if raw.dtype.kind == "b":
        return ops.where(raw, scores, -1e9 if scores.dtype.itemsize > 2 else -1e4)
    if raw.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be boolean or float, "
                        f"got dtype {raw.dtype}")
    return scores + (mask if isinstance(mask, Tensor) else Tensor(raw))


def attention_weights(q, k, attn_mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) over the keys: the weights each query gives each key
    (Vaswani et al. 2017, eq. 1 without the product with v). Masks as in
    :func:`scaled_dot_product_attention`; a key a boolean mask excludes gets weight exactly 0."""
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"attention: incompatible q {q.shape} and k {k.shape}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give attn_mask or is_causal, not both")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = ops.matmul(q, ops.swapaxes(k, -1, -2)) * scale
    if is_causal:
        xp = backend.xp_of(scores.data)
        attn_mask = xp.tril(xp.ones(scores.shape[-2:], dtype=bool))
    if attn_mask is not None:
        scores = _masked_scores(scores, attn_mask)
    return softmax(scores, axis=-1)


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None):
    """softmax(q k^T * scale + mask) v over the last two dims, ``scale`` defaulting to
    1/sqrt(d). ``attn_mask`` (broadcastable to the scores) is boolean (True where a query may
    attend) or float (added to the scores), as in PyTorch; ``is_causal`` lets query i attend
    to keys 0..i; ``dropout_p`` drops attention weights (always, as PyTorch's function does)."""
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"scaled_dot_product_attention: incompatible q {q.shape}, k {k.shape}, v {v.shape}"
        )
    weights = attention_weights(q, k, attn_mask, is_causal, scale)
    if dropout_p:
        weights = dropout(weights, dropout_p, training=True)
    return ops.matmul(weights, v)
