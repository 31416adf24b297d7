"""Set-up shared by the image–text distillers that read an expert buffer (MTT-VL / TESLA-VL / LoRS / RepBlend in
:mod:`.vl_tm`, MDM in :mod:`.mdm`): the dataset check, the dual encoder rebuilt from a buffer's recipe, the noise
initialisation and the nearest-caption display of learned text vectors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.paired import PairedDataset
from ..errors import ConfigError
from ..experts.buffers import ExpertBuffer
from ..experts.model import FlatDualEncoder, build_model

CAPTIONS_NOTE = "nearest real training caption (cosine) of each synthetic text vector, for display"


def require_retrieval(method: str, dataset: PairedDataset) -> None:
    """Image–text methods need a retrieval dataset (image tensors, text vectors, caption-to-image index)."""
    if dataset.task != "retrieval":
        raise ConfigError(f"method {method!r} needs an image-text retrieval dataset; {dataset.name!r} is {dataset.task}")


def buffer_model(buffer: ExpertBuffer, dataset: PairedDataset, mode: str, device: str | torch.device,
                 what: str = "student") -> tuple[torch.nn.Module, FlatDualEncoder]:
    """The dual encoder of ``buffer``'s recipe (its pretrained image encoder loaded when it has one), on ``device``,
    and its flat view over the ``mode`` parameters. Weights are drawn on the CPU, so every device starts from the
    same net; the flat sizes must equal the buffer's."""
    images, texts = dataset.tensors["image"], dataset.tensors["text"]
    model = build_model(buffer.net, tuple(images.shape[1:]), int(texts.shape[1]))
    if buffer.encoder_path is not None:
        from safetensors.torch import load_file

        model.image_encoder.load_state_dict(load_file(str(buffer.encoder_path)))
    model.to(device)
    flat = FlatDualEncoder(model, mode, buffer.net.temperature)
    if flat.sizes != buffer.sizes:
        raise ConfigError(f"{buffer.path}: buffer parameter sizes {buffer.sizes} differ from the {what}'s {flat.sizes}")
    return model, flat


def noise_images(images: Tensor, n: int, gen: torch.Generator | None = None) -> Tensor:
    """``n`` Gaussian images with the real images' per-channel mean and std."""
    mean = images.mean(dim=(0, 2, 3), keepdim=True)
    std = images.std(dim=(0, 2, 3), keepdim=True)
    return mean + std * torch.randn(n, *images.shape[1:], generator=gen)


def noise_texts(texts: Tensor, n: int, gen: torch.Generator | None = None) -> Tensor:
    """``n`` Gaussian text vectors with the real vectors' overall mean and std."""
    return texts.mean() + texts.std() * torch.randn(n, texts.shape[1], generator=gen)


def nearest_captions(dataset: PairedDataset, t: Tensor) -> list[str] | None:
    """The real training caption nearest (cosine) to each learned text vector (display only); None without
    caption strings."""
    caps = dataset.captions
    if caps is None:
        return None
    real = F.normalize(dataset.tensors["text"].float(), dim=1)
    j = (F.normalize(t.float().to(real.device), dim=1) @ real.T).argmax(1)
    return [caps[int(i)] for i in j]
