"""Per-sample LoRA gradients in one batched backward pass (docs/design.md step 1).

For a bias-free linear map y = x Wᵀ applied at every token, the gradient of
sample b's loss is ``G_b = Σ_t (∂L_b/∂y_{b,t}) ⊗ x_{b,t}``. Because samples do
not interact (no batch norm; padding is masked), one backward pass of
``Σ_b L_b`` delivers every ``∂L_b/∂y_{b,t}`` at once: forward hooks keep each
LoRA ``A``/``B`` input, tensor hooks catch the output gradient, and an einsum
per module gives all B per-sample gradients. No Python loop over samples, and
gradients flow only through the layers above the sketched ones (everything
else is frozen for the pass).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from lifelong.selection.projection import ProjectionConfig


@dataclass
class SketchConfig:
    """Which parameters are sketched and how.

    layers: decoder layer indices whose LoRA A/B matrices form θ (negative
        counts from the end). The default, the last layer, keeps the backward
        pass to one decoder layer plus the LM head, so sketching costs about a
        forward pass; add layers for a richer (and slower) sketch.
    projection: the seeded Rademacher projection (see projection.py).
    batch_size: samples per scoring pass.
    """

    layers: list[int] = field(default_factory=lambda: [-1])
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    batch_size: int = 16


class PerSampleGrads:
    """Hooks on linear modules that collect per-sample weight gradients.

    ``modules``: name -> nn.Linear (bias-free, as LoRA A/B are). After a
    backward pass, ``flat()`` returns (B, D) with D = Σ out×in over modules in
    name order.
    """

    def __init__(self, modules: dict[str, torch.nn.Module]):
        self.modules = dict(sorted(modules.items()))
        self.inputs: dict[str, torch.Tensor] = {}
        self.grads: dict[str, torch.Tensor] = {}
        self.handles = []
        for name, mod in self.modules.items():
            if getattr(mod, "bias", None) is not None:
                raise ValueError(f"{name}: per-sample gradients assume a bias-free linear layer")
            self.handles.append(mod.register_forward_hook(self._forward_hook(name)))

    @property
    def dim(self) -> int:
        return sum(m.weight.numel() for m in self.modules.values())

    def _forward_hook(self, name):
        def hook(mod, args, output):
            self.inputs[name] = args[0].detach()  # (B, T, in)

            def grad_hook(g):
                self.grads[name] = g.detach()  # (B, T, out)

            if output.requires_grad:
                output.register_hook(grad_hook)

        return hook

    def flat(self) -> torch.Tensor:
        """(B, D) per-sample gradients, modules in name order, each flattened (out, in)."""
        parts = []
        for name in self.modules:
            x, g = self.inputs[name], self.grads[name]
            parts.append(torch.einsum("bto,bti->boi", g.float(), x.float()).flatten(1))  # (B, out*in)
        self.inputs.clear()
        self.grads.clear()
        return torch.cat(parts, dim=1)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@contextmanager
def only_these_trainable(model: torch.nn.Module, params: list[torch.nn.Parameter]):
    """Temporarily freeze every parameter except ``params`` (restored on exit)."""
    keep = {id(p) for p in params}
    saved = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved:
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


def lora_linears(lora_layers: dict[str, torch.nn.Module]) -> dict[str, torch.nn.Module]:
    """The A and B ``nn.Linear`` of each peft LoRA layer (active adapter)."""
    out = {}
    for name, layer in lora_layers.items():
        for adapter in layer.active_adapters:
            out[f"{name}.lora_A.{adapter}"] = layer.lora_A[adapter]
            out[f"{name}.lora_B.{adapter}"] = layer.lora_B[adapter]
    return out
