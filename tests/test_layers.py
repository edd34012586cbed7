"""The layer map is true: the README's map table lists every module of minigen/ and kernels/
in layers, top to bottom, and a module imports only from its own layer and the layers below
it. Private names (``_name``) never cross modules, by import or by attribute.

The table is the one place the map is written: add a new module to its row there."""
import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("minigen", "kernels")


def read_map(readme=ROOT / "README.md"):
    """``[(layer, [path, ...])]`` from the README's map table, top layer first: each row's
    name and the backticked paths of its second column (a file, or a folder for all its
    modules)."""
    text = readme.read_text()
    table = text[text.index("| layer | modules |"):].split("\n\n")[0].splitlines()[2:]
    layers = []
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        layers.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return layers


def module_name(path):
    """``minigen/nn/utils.py`` -> ``minigen.nn.utils``; a package's __init__ -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def layer_of(path, layers):
    """The index (0 = top) of the layer whose row lists ``path`` or a folder above it."""
    relative = path.relative_to(ROOT).as_posix()
    found = [i for i, (_, entries) in enumerate(layers) for entry in entries
             if relative == entry or (entry.endswith("/") and relative.startswith(entry))]
    assert len(found) == 1, (f"{relative} is in {len(found)} rows of the README's layer map; "
                             "list it (or its folder) in exactly one")
    return found[0]


def imports(path, known):
    """``[(line, imported module, name or None)]`` of every import of minigen or kernels in
    ``path``, at any depth (lazy imports in functions too), and ``[(line, module, attribute)]``
    of the attributes read from imported modules."""
    tree = ast.parse(path.read_text())
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:  # relative: resolve to absolute
            package = module_name(path).split(".")
            package = package if path.name == "__init__.py" else package[:-1]
            base = package[:len(package) - node.level + 1]
            node = ast.ImportFrom(".".join(base + ([node.module] if node.module else [])),
                                  node.names, 0, lineno=node.lineno)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PACKAGES:
                    found.append((node.lineno, alias.name, None))
                    aliases[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in PACKAGES:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:
                    found.append((node.lineno, submodule, None))
                    aliases[alias.asname or alias.name] = submodule
                else:
                    found.append((node.lineno, node.module, alias.name))
    attributes = [(node.lineno, aliases[node.value.id], node.attr) for node in ast.walk(tree)
                  if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id in aliases]
    return found, attributes


def _private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_every_module_is_in_exactly_one_layer_and_every_entry_exists():
    layers = read_map()
    assert len(layers) >= 10, layers
    for path in modules().values():
        layer_of(path, layers)
    for name, entries in layers:
        for entry in entries:
            assert (ROOT / entry).exists(), f"the README's layer map lists {entry} ({name}), " \
                                            "which does not exist"


def test_imports_point_down_the_layer_map():
    layers, known = read_map(), modules()
    wrong = []
    for name, path in known.items():
        here = layer_of(path, layers)
        for line, target, _ in imports(path, known)[0]:
            there = layer_of(known[target], layers)
            if there < here:
                wrong.append(f"{path.relative_to(ROOT)}:{line} ({layers[here][0]}) imports "
                             f"{target} ({layers[there][0]}), a layer above it")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_modules():
    known = modules()
    wrong = []
    for name, path in known.items():
        found, attributes = imports(path, known)
        for line, target, imported in found + attributes:
            if imported is not None and _private(imported) and target != name:
                wrong.append(f"{path.relative_to(ROOT)}:{line} uses {target}.{imported}")
    assert not wrong, "\n".join(wrong)


def test_the_rules_catch_an_upward_import_and_a_private_name(tmp_path):
    """The checks themselves: a planted upward import and a planted private import are
    found (so the tests above cannot pass by finding nothing)."""
    layers, known = read_map(), modules()
    bad = tmp_path / "bad.py"
    bad.write_text("from minigen.optim import _named\n"
                   "def f():\n    import minigen.cli as c\n    return c._main\n")
    found, attributes = imports(bad, known)
    assert (1, "minigen.optim", "_named") in found and (3, "minigen.cli", None) in found
    assert (4, "minigen.cli", "_main") in attributes
    relative = ROOT / "kernels" / "cpu.py"  # "from .reference import adam_scalars"
    assert any(target == "kernels.reference" and name == "adam_scalars"
               for _, target, name in imports(relative, known)[0])
    assert layer_of(known["minigen.cli"], layers) < layer_of(known["minigen.backend"], layers)
