"""``torch.nn.parallel`` stand-in: minigen runs one model per process (data parallelism across
processes is ``minigen.distributed``), so ``data_parallel`` just applies the module."""


def data_parallel(module, inputs, device_ids=None, output_device=None, dim=0,
                  module_kwargs=None):
    """``module(inputs)`` (the device lists are ignored)."""
    return module(inputs, **(module_kwargs or {}))
