"""mg.to_dot / mg.plot_graph: the structure of the DOT text (nodes, edges, labels, styles),
determinism, and rendering with Graphviz's dot (or the error that says how to install it)."""
import collections
import os
import pathlib
import re
import runpy
import shutil

import numpy as np
import pytest

import minigen as mg
from minigen.tensor import Function

NODE = re.compile(r'^\s*([tf]\d+) \[label="((?:[^"\\]|\\.)*)", (.*)\];$')
EDGE = re.compile(r"^\s*([tf]\d+) -> ([tf]\d+);$")
FIGURE_SCRIPT = pathlib.Path(__file__).parents[1] / "docs" / "figures" / "make_graph_figure.py"


def parse(dot):
    """{node: (label, attributes)} and the list of edges of a to_dot text; fails on any line
    that is neither a node, an edge nor the fixed header/footer."""
    nodes, edges = {}, []
    lines = dot.splitlines()
    assert lines[0] == "digraph minigen {" and lines[-1] == "}"
    for line in lines[1:-1]:
        if m := NODE.match(line):
            assert m[1] not in nodes, f"node {m[1]} defined twice"
            nodes[m[1]] = (m[2].replace("\\n", "\n"), m[3])
        elif m := EDGE.match(line):
            edges.append((m[1], m[2]))
        else:
            assert re.match(r"^\s*(rankdir|node|edge)\b", line), line
    for a, b in edges:
        assert a in nodes and b in nodes and a[0] != b[0], (a, b)  # tensor <-> function only
    return nodes, edges


def functions(nodes):
    return sorted(label for node, (label, _) in nodes.items() if node.startswith("f"))


def describe(nodes, edges):
    """Each function's inputs as names: a named tensor by its label, an unnamed one by the
    function that produced it (reconstructed from the edges, independently of the walk) or
    as <leaf>."""
    producer = {b: a for a, b in edges if a.startswith("f")}

    def name(t):
        if nodes[t][0]:
            return nodes[t][0]
        return f"<{nodes[producer[t]][0]}>" if t in producer else "<leaf>"

    inputs = collections.defaultdict(list)
    for a, b in edges:
        if b.startswith("f"):
            inputs[nodes[b][0]].append(name(a))
    return {f: sorted(xs) for f, xs in inputs.items()}


@pytest.fixture
def xy():
    return (mg.tensor([1.0, 2.0, 3.0], requires_grad=True),
            mg.tensor([4.0, 5.0, 6.0], requires_grad=True))


def test_known_graph_nodes_edges_and_functions(xy):
    x, y = xy
    out = (x * y + x).sum()
    nodes, edges = parse(mg.to_dot(out, params={"x": x, "y": y}))
    tensors = [n for n in nodes if n.startswith("t")]
    assert len(tensors) == 5  # x, y, x*y, x*y + x, the sum
    assert functions(nodes) == ["Add", "Mul", "Sum"]
    assert len(edges) == 8  # 5 into functions, 3 out of them
    assert describe(nodes, edges) == {"Mul": ["x", "y"], "Add": ["<Mul>", "x"], "Sum": ["<Add>"]}
    assert sum(1 for a, _ in edges if nodes[a][0] == "x") == 2  # x feeds Mul and Add


def test_shared_subexpression_appears_once(xy):
    x, y = xy
    h = (x * y).exp()
    out = (h * h + h).sum()
    nodes, edges = parse(mg.to_dot(out))
    assert functions(nodes) == ["Add", "Exp", "Mul", "Mul", "Sum"]
    (exp_node,) = [n for n, (label, _) in nodes.items() if label == "Exp"]
    (h_node,) = [b for a, b in edges if a == exp_node]
    uses = collections.Counter(nodes[b][0] for a, b in edges if a == h_node)
    assert uses == {"Mul": 2, "Add": 1}  # h: twice by h * h, once by + h
    assert len([n for n in nodes if n.startswith("t")]) == 7  # x y x*y h h*h h*h+h sum


def test_equal_but_separate_computations_are_separate_nodes(xy):
    x, y = xy
    nodes, _ = parse(mg.to_dot((x * y + x * y).sum()))
    assert functions(nodes) == ["Add", "Mul", "Mul", "Sum"]


def test_tensor_used_twice_by_one_function_gives_two_edges():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    nodes, edges = parse(mg.to_dot((x * x).sum(), params=[("x", x)]))
    (x_node,) = [n for n, (label, _) in nodes.items() if label == "x"]
    assert [nodes[b][0] for a, b in edges if a == x_node] == ["Mul", "Mul"]


def test_verbose_labels_have_shape_and_dtype():
    x = mg.tensor(np.ones((2, 3)), requires_grad=True, dtype=np.float64)
    b = mg.tensor(np.ones(3), requires_grad=True, dtype=np.float64)
    out = (x + b).sum()
    nodes, _ = parse(mg.to_dot(out, verbose=True, params={"b": b}))
    labels = sorted(label for n, (label, _) in nodes.items() if n.startswith("t"))
    assert labels == ["() float64", "(2, 3) float64", "(2, 3) float64", "b\n(3,) float64"]
    plain, _ = parse(mg.to_dot(out, params={"b": b}))
    assert sorted(label for n, (label, _) in plain.items() if n.startswith("t")) == ["", "", "", "b"]


def test_styles_tell_leaves_constants_intermediates_and_output(xy):
    x, y = xy
    c = mg.tensor([1.0, 1.0, 1.0])  # requires no grad
    out = ((x * y) + c).sum()
    nodes, _ = parse(mg.to_dot(out, params={"x": x, "y": y, "c": c}))
    attrs = {label: a for label, a in nodes.values()}
    assert "fillcolor=orange" in attrs["x"] and "fillcolor=orange" in attrs["y"]
    assert "dashed" in attrs["c"] and "fillcolor=lightgrey" in attrs["c"]
    assert all("shape=box" in attrs[f] for f in ("Mul", "Add", "Sum"))
    out_attrs = nodes["t0"][1]  # numbering starts at the output
    assert "palegreen" in out_attrs and "peripheries=2" in out_attrs
    inner = [a for n, (label, a) in nodes.items() if n != "t0" and n[0] == "t" and not label]
    assert len(inner) == 2 and all("fillcolor=white" in a for a in inner)


def test_no_grad_tensor_is_a_single_node(xy):
    x, _ = xy
    with mg.no_grad():
        out = (x * 2.0).sum()
    nodes, edges = parse(mg.to_dot(out, verbose=True))
    assert list(nodes) == ["t0"] and edges == []
    assert nodes["t0"][0] == "() float32" and "palegreen" in nodes["t0"][1]
    nodes, edges = parse(mg.to_dot(x))  # a leaf: itself only
    assert list(nodes) == ["t0"] and edges == []


def test_text_is_deterministic_and_numbered_by_traversal():
    def build():
        mg.manual_seed(3)
        model = mg.nn.MLP(2, 1, hidden=(4,))
        return mg.to_dot(model(mg.randn(5, 2)).mean(), verbose=True,
                         params=dict(model.named_parameters()))

    first, second = build(), build()
    assert first == second
    nodes, _ = parse(first)
    for kind in "tf":
        numbers = sorted(int(n[1:]) for n in nodes if n[0] == kind)
        assert numbers == list(range(len(numbers)))


def test_params_name_module_parameters():
    lin = mg.nn.Linear(3, 2)
    nodes, edges = parse(mg.to_dot(lin(mg.randn(4, 3)).sum(), params=lin.named_parameters()))
    assert describe(nodes, edges)["Linear"] == ["<leaf>", "bias", "weight"]


class _Halves(Function):
    """Two outputs: the first and second half of a vector."""

    def forward(self, x):
        n = len(x) // 2
        return x[:n], x[n:]

    def backward(self, g1, g2):
        return mg.cat([g1, g2])


def test_multi_output_function_shows_outputs_still_alive():
    x = mg.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    a, b = _Halves()(x)
    nodes, edges = parse(mg.to_dot(a.sum()))
    (halves,) = [n for n, (label, _) in nodes.items() if label == "_Halves"]
    assert len([b_ for a_, b_ in edges if a_ == halves]) == 2  # a and b (b held here)
    nodes, edges = parse(mg.to_dot(a.sum() + b.sum()))  # both used: one _Halves node
    assert functions(nodes) == ["Add", "Sum", "Sum", "_Halves"]
    assert len(edges) == 3 + 2 * 2 + 3  # _Halves: x in, a and b out; Sums: 1 in, 1 out; Add
    del b
    nodes, edges = parse(mg.to_dot(a.sum()))
    (halves,) = [n for n, (label, _) in nodes.items() if label == "_Halves"]
    assert len([b_ for a_, b_ in edges if a_ == halves]) == 1  # b is gone: only a


def test_second_order_graph():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    (x ** 3).sum().backward(create_graph=True)
    nodes, _ = parse(mg.to_dot(x.grad_tensor))
    assert "Mul" in functions(nodes) and len(nodes) > 1


def test_bad_arguments(xy):
    x, _ = xy
    with pytest.raises(TypeError, match="output must be a Tensor"):
        mg.to_dot(np.ones(3))
    with pytest.raises(TypeError, match=r"params\['w'\] must be a Tensor"):
        mg.to_dot(x, params={"w": np.ones(3)})
    with pytest.raises(ValueError, match="rankdir"):
        mg.to_dot(x, rankdir="up")
    with pytest.raises(ValueError, match=r"\.dot or one of \.svg, \.png, \.pdf"):
        mg.plot_graph(x, "graph.jpeg")


def test_plot_graph_writes_dot_without_graphviz(xy, tmp_path, monkeypatch):
    x, y = xy
    out = (x * y).sum()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    path = mg.plot_graph(out, tmp_path / "g.dot", verbose=True)
    assert path.read_text() == mg.to_dot(out, verbose=True)


def test_plot_graph_without_dot_says_how_to_install(xy, tmp_path, monkeypatch):
    x, _ = xy
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FileNotFoundError) as err:
        mg.plot_graph(x.sum(), tmp_path / "g.svg")
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert hint in str(err.value)
    assert not (tmp_path / "g.svg").exists()


@pytest.mark.skipif(os.name != "posix", reason="a shell-script stand-in for dot")
def test_plot_graph_reports_dot_failure(xy, tmp_path, monkeypatch):
    x, _ = xy
    fake = tmp_path / "dot"
    fake.write_text("#!/bin/sh\necho 'bad things' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"exit 3\): bad things"):
        mg.plot_graph(x.sum(), tmp_path / "g.png")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot not installed")
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_plot_graph_renders_with_dot(xy, tmp_path, suffix, magic):
    x, y = xy
    path = mg.plot_graph((x * y).sum(), tmp_path / f"g{suffix}", params={"x": x})
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":
        assert b">Mul<" in data and b">x<" in data


def test_ddpm_figure_graph():
    """The graph behind docs/figures/ddpm_step_graph.svg: Algorithm 1's loss through the
    three Linear layers and two SiLUs of the MLP, every parameter a named leaf."""
    loss, params = runpy.run_path(str(FIGURE_SCRIPT))["ddpm_step_graph"]()
    nodes, edges = parse(mg.to_dot(loss, verbose=True, params=params))
    assert functions(nodes).count("Linear") == 3 and functions(nodes).count("SiLU") == 2
    named = {label.split("\n")[0] for label, _ in nodes.values()} & set(params)
    assert named == set(params) and len(params) == 6
    assert nodes["t0"][0] == "() float32"
