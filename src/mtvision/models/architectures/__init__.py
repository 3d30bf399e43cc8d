"""How tasks share: one module per architecture, registered by name (``model.architecture``).

Importing this package registers every built-in architecture; ``create_architecture``
builds one by name and checks its options.
"""

from mtvision.models.architectures import branched, cross_stitch, hard, mmoe, mtan, mti_net, padnet  # noqa: F401  (they register)
from mtvision.models.architectures.base import (
    ARCHITECTURES,
    Architecture,
    Decoded,
    Trunk,
    available_architectures,
    create_architecture,
    register,
)

__all__ = ["ARCHITECTURES", "Architecture", "Decoded", "Trunk", "available_architectures", "create_architecture",
           "register"]
