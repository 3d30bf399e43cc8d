"""How tasks share: one module per architecture, registered by name (``model.architecture``).

Importing this package registers every built-in architecture; ``create_architecture``
builds one by name and checks its options.
"""

import mtvision.models.architectures.cross_stitch  # noqa: F401  (registers)
import mtvision.models.architectures.mmoe  # noqa: F401  (registers)
import mtvision.models.architectures.mtan  # noqa: F401  (registers)
import mtvision.models.architectures.mti_net  # noqa: F401  (registers)
import mtvision.models.architectures.padnet  # noqa: F401  (registers)
from mtvision.models.architectures import branched, hard  # noqa: F401  (registers)
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
