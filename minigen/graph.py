"""The autograd graph as a picture: ``to_dot`` writes the Functions and Tensors that produced
a tensor as Graphviz DOT text (no package needed); ``plot_graph`` renders it with the ``dot``
program.

Edges follow the data, input tensor -> Function -> output tensor, as in DeZero's
``plot_dot_graph``. The walk is the one ``backward`` makes: from a tensor to its ``creator``,
from a Function to its ``inputs``, iteratively. Nodes are numbered in the order the walk
(breadth-first from ``output``) first meets them, so the same computation gives the same
text on every run. Node styles:

- Function: light-blue box with the class name (``Mul``, ``Linear``, ``Sum``);
- leaf that requires grad (a parameter or an input being differentiated): orange;
- tensor that requires no grad (data, targets, constants): grey, dashed;
- intermediate tensor: white; ``output``: green, double outline.
"""
import collections
import pathlib
import shutil
import subprocess

from minigen.tensor import Tensor

RENDER_FORMATS = ("svg", "png", "pdf")

_INSTALL = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz), or write the DOT text with a path ending in .dot"
)

_STYLE = {
    "function": 'shape=box, style="rounded,filled", fillcolor=lightblue',
    "leaf": "style=filled, fillcolor=orange",
    "constant": 'style="filled,dashed", fillcolor=lightgrey',
    "intermediate": "style=filled, fillcolor=white",
    "output": "style=filled, fillcolor=palegreen, peripheries=2",
}


def _walk(output):
    """Tensors and Functions reachable from ``output`` as ``{id: (node name, object)}`` in
    discovery order, and the edges between node names. A tensor used twice by one Function
    (``x * x``) gives two edges; a Function's outputs that nothing holds any more are left out."""
    tensors, functions, edges = {}, {}, []

    def tensor_node(t):
        if id(t) not in tensors:
            tensors[id(t)] = (f"t{len(tensors)}", t)
        return tensors[id(t)][0]

    tensor_node(output)
    queue = collections.deque([output])
    while queue:
        f = queue.popleft().creator
        if f is None or id(f) in functions:
            continue
        name = f"f{len(functions)}"
        functions[id(f)] = (name, f)
        for ref in f.outputs:
            o = ref()
            if o is not None:
                edges.append((name, tensor_node(o)))
        for x in f.inputs:
            if id(x) not in tensors:
                queue.append(x)
            edges.append((tensor_node(x), name))
    return tensors, functions, edges


def graph_bytes(output):
    """Bytes of the arrays of the tensors in the graph that produced ``output`` (parameters,
    inputs and the intermediates it keeps for backward): a measure of a step's memory."""
    tensors, _, _ = _walk(output)
    return sum(t.data.nbytes for _, t in tensors.values())


def _quote(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor_label(t, name, verbose):
    lines = [name] if name else []
    if verbose:
        shape = "(" + ", ".join(str(n) for n in t.shape) + ("," if t.ndim == 1 else "") + ")"
        device = "" if t.device == "cpu" else f" {t.device}"
        lines.append(f"{shape} {t.dtype}{device}")
    return "\n".join(lines)


def _tensor_kind(t, output):
    if t is output:
        return "output"
    if not t.requires_grad:
        return "constant"
    return "leaf" if t.creator is None else "intermediate"


def to_dot(output, verbose=False, params=None, rankdir="TB"):
    """Graphviz DOT text of the graph that produced ``output`` (a Tensor).

    ``verbose`` adds each tensor's shape and dtype to its label. ``params`` names tensors
    (``dict(model.named_parameters())``, or any ``{name: Tensor}`` / ``(name, Tensor)``
    pairs); unnamed tensors are drawn as small circles unless ``verbose``. ``rankdir`` is
    Graphviz's layout direction: "TB" (inputs on top), "LR", "BT" or "RL".

    >>> import minigen as mg
    >>> x = mg.tensor([1.0, 2.0], requires_grad=True)
    >>> dot = mg.to_dot((x * x).sum())  # t0 = sum, f0 = Sum, t1 = x * x, f1 = Mul, t2 = x
    >>> [line.strip() for line in dot.splitlines() if "->" in line]
    ['f0 -> t0;', 't1 -> f0;', 'f1 -> t1;', 't2 -> f1;', 't2 -> f1;']
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"to_dot: output must be a Tensor, got {type(output).__name__}")
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"to_dot: rankdir must be 'TB', 'LR', 'BT' or 'RL', got {rankdir!r}")
    pairs = params.items() if isinstance(params, dict) else (params or ())
    names = {}
    for name, t in pairs:
        if not isinstance(t, Tensor):
            raise TypeError(f"to_dot: params[{name!r}] must be a Tensor, got {type(t).__name__}")
        names[id(t)] = str(name)
    tensors, functions, edges = _walk(output)
    lines = [
        "digraph minigen {",
        f"  rankdir={rankdir};",
        '  node [fontname="Helvetica", fontsize=10];',
        "  edge [arrowsize=0.6];",
    ]
    for key, (node, t) in tensors.items():
        label = _tensor_label(t, names.get(key, ""), verbose)
        shape = "ellipse" if label else "circle, width=0.25, fixedsize=true"
        lines.append(f"  {node} [label={_quote(label)}, shape={shape}, "
                     f"{_STYLE[_tensor_kind(t, output)]}];")
    for node, f in functions.values():
        lines.append(f"  {node} [label={_quote(type(f).__name__)}, {_STYLE['function']}];")
    lines += [f"  {a} -> {b};" for a, b in edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_graph(output, path, verbose=False, params=None, rankdir="TB"):
    """Write the graph of ``output`` to ``path`` and return the path (a ``pathlib.Path``).

    The format comes from the suffix: ``.dot`` writes the DOT text of ``to_dot`` (always
    possible); ``.svg``, ``.png`` and ``.pdf`` render it with Graphviz's ``dot`` program and
    raise FileNotFoundError, saying how to install Graphviz, when it is not on the PATH.
    The other arguments are those of ``to_dot``.
    """
    path = pathlib.Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt != "dot" and fmt not in RENDER_FORMATS:
        raise ValueError(
            f"plot_graph: cannot tell the format from {str(path)!r}; the path must end in "
            f".dot or one of {', '.join('.' + f for f in RENDER_FORMATS)}"
        )
    text = to_dot(output, verbose=verbose, params=params, rankdir=rankdir)
    if fmt == "dot":
        path.write_text(text)
        return path
    dot = shutil.which("dot")
    if dot is None:
        raise FileNotFoundError(f"plot_graph: the Graphviz program 'dot' is not on the PATH; "
                                f"{_INSTALL}")
    done = subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=text, text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"plot_graph: dot -T{fmt} failed (exit {done.returncode}): "
                           f"{done.stderr.strip()}")
    return path
