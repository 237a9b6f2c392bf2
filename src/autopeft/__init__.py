"""AutoPEFT: automatic configuration search for parameter-efficient fine-tuning.

Importing the package is cheap: torch, transformers, adapters and botorch load only in the
modules that use them.
"""

import os

# On a machine shared with other jobs, OpenMP threads that spin at barriers while another thread
# is descheduled make CPU training many times slower; sleeping waiters avoid that. Only applies if
# autopeft is imported before torch, and never overrides the user's own setting.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

from autopeft.errors import UserError
from autopeft.params import ModelDims, ParamCount, param_count
from autopeft.space import MODULES, ConfigError, PEFTConfig, SearchSpace

__version__ = "0.1.0"

__all__ = [
    "MODULES",
    "ConfigError",
    "ModelDims",
    "PEFTConfig",
    "ParamCount",
    "SearchSpace",
    "UserError",
    "__version__",
    "param_count",
]
