"""PyTorch's ``dim``/``keepdim`` and NumPy's ``axis``/``keepdims``: one argument under two
names. The ops added for PyTorch's surface take either spelling (docs/semantics.md)."""


def either(op, torch_name, torch_value, numpy_name, numpy_value, default=None):
    """The value passed under one of the two names (``default`` when neither); both given
    and different is an error naming the two."""
    if torch_value is None:
        return default if numpy_value is None else numpy_value
    if numpy_value is not None and numpy_value != torch_value:
        raise ValueError(f"{op}: {torch_name}={torch_value!r} and {numpy_name}={numpy_value!r} "
                         f"disagree (pass one)")
    return torch_value
