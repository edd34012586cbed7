"""Stand-ins for ``torch.backends`` switches that have no meaning for minigen
(``backends.cudnn.benchmark = True`` is accepted and changes nothing)."""
from minigen.backends import cudnn  # noqa: F401
