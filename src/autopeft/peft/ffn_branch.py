"""Serial and parallel adapters at the same FFN: an extension of the adapters library.

The paper's space puts a parallel adapter beside a layer's FFN and a serial adapter after it, in
the same layer: h = FFN(x) + PA(x), then the serial adapter on h, then the layer's residual and
LayerNorm. adapters' `ConfigUnion` refuses two bottleneck configs at one location, and its stock
`ParallelAdapter` cannot be stacked: its `pre_forward` replaces the FFN output by the FFN input.

The extension uses adapters' own composition machinery. The two adapters are added under separate
names and activated as `Stack(parallel, serial)`. Each parallel adapter at the FFN is upgraded to
`FFNParallelAdapter`, which adds its branch to the FFN output instead of replacing it, so the
serial adapter that follows in the stack sees FFN(x) + PA(x). Alone, it computes exactly what the
stock `ParallelAdapter` computes (a test checks this), so the upgrade is safe for every model.
"""

from __future__ import annotations

from typing import Any

from adapters.methods.bottleneck import BottleneckLayer
from adapters.methods.modeling import ParallelAdapter


class FFNParallelAdapter(ParallelAdapter):
    """A parallel bottleneck adapter whose output joins the FFN output, so it composes in a Stack."""

    def pre_forward(self, hidden_states, input_tensor, layer_norm, fusion_config=None):
        # Keep the FFN output as the running hidden state; the branch reads the FFN input from
        # the residual slot (`adapter_residual` in adapters' BottleneckState).
        return hidden_states, None, input_tensor

    def forward(self, x, residual_input, output_gating=False):
        """x: FFN output, residual_input: FFN input; both `batch x seq x hidden`."""
        branch, *rest = super().forward(residual_input, None, output_gating)
        return (x + branch, *rest)

    def post_forward(self, hidden_states, input_hidden_states, input_tensor, layer_norm):
        # The branch is already in `hidden_states`; only the layer's residual and LayerNorm remain.
        if self.original_ln_after:
            if layer_norm is not None:
                return layer_norm(hidden_states + input_tensor)
            return hidden_states + input_tensor
        return hidden_states


def enable_ffn_branches(model: Any) -> int:
    """Upgrade every parallel adapter at an FFN of `model` to `FFNParallelAdapter`.

    Call it after adding or loading adapters (idempotent). The subclass adds no state, so the
    upgrade keeps parameters, names and saved checkpoints as they are. Returns the number upgraded.
    """
    upgraded = 0
    for module in model.modules():
        if isinstance(module, BottleneckLayer) and module.location_key == "output_adapter":
            for adapter in module.adapters.values():
                if type(adapter) is ParallelAdapter:
                    adapter.__class__ = FFNParallelAdapter
                    upgraded += 1
    return upgraded
