# Copyright (c) monai_tonno contributors
# SPDX-License-Identifier: Apache-2.0
"""Class activation maps of a 2D slice classifier: GradCAM, GradCAM++ and LayerCAM behind one interface.

The formulas follow MONAI's ``GradCAM`` (``monai.visualize``), the GradCAM++ paper and LayerCAM (P.-T. Jiang et al.,
*LayerCAM: Exploring Hierarchical Class Activation Maps for Localization*, IEEE TIP 2021):

- GradCAM: ``ReLU(sum_c mean_xy(dy/dA_c) A_c)``;
- GradCAM++ (``"gradcampp"``, A. Chattopadhay et al., *Grad-CAM++*, WACV 2018, eq. 19 with the score
  ``exp(y)``): ``ReLU(sum_c w_c A_c)``, ``w_c = sum_xy alpha_c ReLU(exp(y) g_c)``, ``g = dy/dA``,
  ``alpha = g^2 / (2 g^2 + sum_xy(A) g^3)``: the map's sum of the activations times the local ``g^3``, as
  pytorch-grad-cam computes it too (which drops the factor ``exp(y)``, a per-slice scale that its per-image
  normalisation removes; raw maps keep it, since the tomographic reconstruction adds maps of many slices);
- ``"gradcampp_monai"``: MONAI's ``GradCAMpp``, whose denominator sums ``A g^3`` over the map instead,
  ``alpha = g^2 / (2 g^2 + sum_xy(A g^3))``; the two weight the channels differently and their maps differ;
- LayerCAM: ``ReLU(sum_c ReLU(dy/dA_c) A_c)``, a weight per location.

Unlike MONAI's classes, the hooks live only for the duration of a call, gradients are enabled inside the call
(so it works within ``torch.no_grad()``, as in ``SupervisedEvaluator``), and maps stay raw (no upsampling, no
normalisation) at the layer's resolution, which is what Averaged and Tomographic CAM need.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from monai_tonno.networks.dtype import to_network_dtype

__all__ = ["CAM_METHODS", "SliceCAM", "average_pooling_cam", "cam_layer_names"]

CAM_METHODS = ("gradcam", "gradcampp", "gradcampp_monai", "layercam")


def cam_layer_names(network: nn.Module) -> list[str]:
    """Names a CAM can be taken at: the network's named sub-modules (``"layer1"`` .. ``"layer4"`` for ResNets)."""
    return [name for name, _ in network.named_modules() if name]


def _combine(method: str, activations: torch.Tensor, gradients: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    if method == "layercam":
        return torch.relu((torch.relu(gradients) * activations).sum(dim=1))
    if method == "gradcam":
        weights = gradients.mean(dim=(2, 3), keepdim=True)
    else:  # GradCAM++ explains exp(logit): its gradient is exp(logit) * g, and alpha is written with g
        squared, cubed = gradients.pow(2), gradients.pow(3)
        if method == "gradcampp":
            third = activations.sum(dim=(2, 3), keepdim=True) * cubed
        else:
            third = (activations * cubed).sum(dim=(2, 3), keepdim=True)
        denominator = 2 * squared + third
        alpha = squared / (torch.where(denominator != 0, denominator, torch.ones_like(denominator)) + 1e-7)
        positive = torch.relu(logits.exp()[:, None, None, None] * gradients)
        weights = (alpha * positive).sum(dim=(2, 3), keepdim=True)
    return torch.relu((weights * activations).sum(dim=1))


def _check_layers(network: nn.Module, layers: Sequence[str]) -> dict[str, nn.Module]:
    modules = dict(network.named_modules())
    for layer in layers:
        if layer not in modules or not layer:
            top = [name for name, _ in network.named_children()]
            raise ValueError(
                f"the network has no layer {layer!r}; top-level layers: {top} "
                f"(any of the {len(modules) - 1} names of network.named_modules() is valid)."
            )
    return {layer: modules[layer] for layer in layers}


def _check_spatial(layer: str, activation: object) -> None:
    if not isinstance(activation, torch.Tensor) or activation.ndim != 4:
        shape = tuple(activation.shape) if isinstance(activation, torch.Tensor) else type(activation).__name__
        raise ValueError(
            f"cam_layer {layer!r} outputs {shape}, but a CAM needs a spatial feature map (N, C, h, w): choose a "
            "convolutional stage, e.g. 'layer1' .. 'layer4' of a ResNet, not the pooling or the head."
        )


class SliceCAM:
    """Raw class activation maps of a batch of slices at one layer, with one backward pass for the whole batch.

    Example::

        cam = SliceCAM(classifier, "layer2", method="layercam")
        maps = cam(slices)  # (N, H / 8, W / 8) for a timm ResNet
        every = SliceCAM(classifier, ["layer1", "layer2"], method=["gradcam", "layercam"])
        by_key, logits = every.all_maps(slices)  # {("gradcam", "layer1"): ..., ...} from one forward/backward

    Args:
        network: a 2D classifier mapping ``(N, C, H, W)`` to ``(N, K)`` logits. Samples must be independent
            (eval-mode or frozen batch norm, group norm), since one backward pass serves the whole batch.
        layer: name of the sub-module whose output is explained, see :func:`cam_layer_names`; or several.
        method: ``"gradcam"``, ``"gradcampp"`` or ``"layercam"``; or several.
        class_index: the logit to explain.

    Raises:
        ValueError: an unknown method, or a layer name the network does not have (the valid names are listed).
    """

    def __init__(
        self,
        network: nn.Module,
        layer: str | Sequence[str],
        method: str | Sequence[str] = "layercam",
        class_index: int = 0,
    ) -> None:
        self.methods = (method,) if isinstance(method, str) else tuple(method)
        for name in self.methods:
            if name not in CAM_METHODS:
                raise ValueError(f"method must be one of {CAM_METHODS}, got {name!r}.")
        self.layers = (layer,) if isinstance(layer, str) else tuple(layer)
        self.modules = _check_layers(network, self.layers)
        self.network = network
        self.class_index = class_index

    def __call__(self, slices: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` slices to ``(N, h, w)`` maps of the first method at the first layer."""
        return self.all_maps(slices)[0][self.methods[0], self.layers[0]]

    def maps_and_logits(self, slices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The maps of the first method at the first layer, and the explained logits ``(N,)``."""
        maps, logits = self.all_maps(slices)
        return maps[self.methods[0], self.layers[0]], logits

    def all_maps(self, slices: torch.Tensor) -> tuple[dict[tuple[str, str], torch.Tensor], torch.Tensor]:
        """Maps of every ``(method, layer)`` and the explained logits ``(N,)``, from one forward and one backward."""
        captured: dict[str, torch.Tensor] = {}
        handles = [
            module.register_forward_hook(lambda _m, _i, output, name=name: captured.__setitem__(name, output))
            for name, module in self.modules.items()
        ]
        try:
            with torch.enable_grad():
                inputs = to_network_dtype(self.network, slices.detach()).requires_grad_(True)
                logits = self.network(inputs)
                logits = logits.reshape(logits.shape[0], -1)[:, self.class_index]
                missing = [layer for layer in self.layers if layer not in captured]
                if missing:
                    raise RuntimeError(f"layers {missing} were not used in the network's forward pass.")
                activations = [captured[layer] for layer in self.layers]
                for layer, activation in zip(self.layers, activations, strict=True):
                    _check_spatial(layer, activation)
                gradients = torch.autograd.grad(logits.sum(), activations)
        finally:
            for handle in handles:
                handle.remove()
        logits = logits.detach().float()
        maps = {
            (method, layer): _combine(method, activation.detach(), gradient, logits).float()
            for layer, activation, gradient in zip(self.layers, activations, gradients, strict=True)
            for method in self.methods
        }
        return maps, logits


def average_pooling_cam(kernel: int):
    """A stand-in "CAM" of resolution ``slice_size / kernel``: each slice average-pooled, channels summed.

    Used as ``TomographicInferer(mode=..., cam_method=average_pooling_cam(k))`` it reproduces the paper's
    Figure 4: with ``kernel=1`` Averaged CAM gives the input back; as ``kernel`` grows Averaged CAM blurs while
    Tomographic CAM keeps the edges. The network argument is ignored.
    """
    if kernel < 1:
        raise ValueError(f"kernel must be at least 1, got {kernel}.")

    def pooled(network: object, slices: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.avg_pool2d(slices, kernel).sum(dim=1)

    return pooled
