"""AutoPEFT: automatic configuration search for parameter-efficient fine-tuning.

Importing the package is cheap: torch, transformers, adapters and botorch load only in the
modules that use them.
"""

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
