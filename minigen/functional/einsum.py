"""Einstein summation, differentiable to any order.

For y = einsum("s_1,...,s_k->r", x_1, ..., x_k), the gradient of x_i contracts the output
gradient with the other operands: einsum("r,s_1,..(without s_i)..,s_k->s_i", gy, ...). Two
cases need more than that one call: a letter of s_i that appears nowhere else was summed
out, so its gradient is broadcast back along it; a letter repeated in s_i (a diagonal, as
in "ii->i") receives the gradient on that diagonal only, a scatter into zeros. The gradient
is itself an ``einsum``, so second derivatives come from the same rule.
"""
import string

from minigen import backend
from minigen.functional import ops
from minigen.tensor import Function, as_tensor


def _parse(equation, shapes):
    """(input subscripts, output subscripts) with ``...`` replaced by unused letters and
    the implicit output (letters that occur once, sorted) made explicit."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: {equation!r} has {len(terms)} operands, got {len(shapes)}")
    free = [c for c in string.ascii_letters if c not in equation]
    width = max([len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t],
                default=0)
    ellipsis = "".join(free[:width])
    expanded = []
    for t, s in zip(terms, shapes):
        if "..." in t:
            t = t.replace("...", ellipsis[width - (len(s) - len(t) + 3):])
        if len(t) != len(s) or not all(c.isalpha() for c in t):
            raise ValueError(f"einsum: subscripts {t!r} do not match an operand of shape {s}")
        expanded.append(t)
    if arrow:
        out = rhs.replace("...", ellipsis)
    else:
        letters = "".join(expanded)
        out = ellipsis + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                        and c not in ellipsis))
    unknown = set(out) - set("".join(expanded))
    if unknown or len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscripts {out!r} must be distinct input letters")
    return expanded, out


class Einsum(Function):
    def __init__(self, terms, out):
        self.terms, self.out = terms, out

    def forward(self, *xs):
        spec = ",".join(self.terms) + "->" + self.out
        return backend.xp_of(xs[0]).einsum(spec, *xs, optimize=len(xs) > 2)

    def backward(self, gy):
        return tuple(self._grad(i, gy) if x.requires_grad else None
                     for i, x in enumerate(self.inputs))

    def _grad(self, i, gy):
        x, term = self.inputs[i], self.terms[i]
        others = [(t, self.inputs[j]) for j, t in enumerate(self.terms) if j != i]
        letters = list(dict.fromkeys(term))  # distinct, in order
        size = {c: x.shape[term.index(c)] for c in letters}
        reachable = set(self.out).union(*(set(t) for t, _ in others))
        kept = "".join(c for c in letters if c in reachable)
        g = Einsum([self.out] + [t for t, _ in others], kept)(gy, *(o for _, o in others))
        if len(kept) < len(letters):  # letters summed out of the output: broadcast back
            g = ops.reshape(g, tuple(size[c] if c in kept else 1 for c in letters))
            g = ops.broadcast_to(g, tuple(size[c] for c in letters))
        if len(letters) == len(term):
            return g
        xp = backend.xp_of(gy.data)
        grid = {c: xp.arange(size[c]).reshape([-1 if d == c else 1 for d in letters])
                for c in letters}
        return ops.GetItemGrad(tuple(grid[c] for c in term), x.shape)(g)


def einsum(equation, *operands):
    """NumPy's and PyTorch's ``einsum``: "ij,jk->ik" is a matrix product, "ii->i" a diagonal,
    "bij->" a total; ``...`` stands for the leading dims; without "->" the output is the
    letters that occur once, sorted. Operands may also be passed as one list."""
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = operands[0]
    xs = ops.promote(*[as_tensor(x) for x in operands])
    terms, out = _parse(equation, [x.shape for x in xs])
    for c in set("".join(terms)):
        sizes = {x.shape[k] for t, x in zip(terms, xs) for k, d in enumerate(t) if d == c}
        if len(sizes) > 1:
            raise ValueError(f"einsum: subscript {c!r} has sizes {sorted(sizes)} in {equation!r}")
    return Einsum(terms, out)(*xs)


