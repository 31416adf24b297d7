"""Expert trajectories for trajectory matching: the shared image-text model and the buffers."""

from .buffers import ExpertBuffer, ExpertConfig, default_buffer_dir, ensure_buffer, train_experts
from .model import FlatDualEncoder, VLNetConfig, build_model

__all__ = ["ExpertBuffer", "ExpertConfig", "default_buffer_dir", "ensure_buffer", "train_experts",
           "FlatDualEncoder", "VLNetConfig", "build_model"]
