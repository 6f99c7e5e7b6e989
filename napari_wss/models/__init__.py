"""Networks: the Residual U-Net used everywhere and the shallow CNN of the toy experiments."""

from napari_wss.models.shallow import ShallowCNN
from napari_wss.models.unet import ResidualUNet, build_model

__all__ = ["ResidualUNet", "ShallowCNN", "build_model"]
