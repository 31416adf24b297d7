"""The image-text model experts and students share, and its flat-parameter functional form.

The architecture is the retrieval protocol's :class:`~mmdistill.nets.dual_encoder.DualEncoder` (a registered
image net + linear image projection, an MLP text head over frozen MiniLM vectors), so expert trajectories,
the distillation student and the evaluation model are one network. Differences to the protocol: the
temperature is fixed (``scale = exp(log_scale)``, ``log_scale = log(1/tau)``) and
no augmentation runs inside the student's inner loop (MTT-VL's DSA flags are dead code).

Two parameter sets (``mode``):

* ``full``  - θ = [image encoder, image projection | text head] (MTT-VL, LoRS experts and students);
* ``heads`` - θ = [image projection | text head] over a frozen image encoder (RepBlend's symmetric
  projection trajectories); the encoder runs outside θ and gradients still reach the pixels.

The image branch comes first in θ; ``sizes = (n_image, n_text)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from ..losses.contrastive import contrastive_logits, log_scale_of
from ..errors import ConfigError
from ..evaluate.retrieval import RetrievalProtocol
from ..nets.dual_encoder import DualEncoder

Mode = Literal["full", "heads"]


@dataclass
class VLNetConfig:
    """Architecture of experts/students; evaluation copies these fields into its protocol."""

    image_arch: str = "convnet"  # any registered image net (nets.create_net)
    width: int = 32  # convnet width (ignored by other archs)
    depth: int = 3  # convnet depth
    norm: str = "instance"  # convnet norm; "instance" keeps the functional student free of running stats
    embed_dim: int = 256  # joint embedding size (image projection and text head output)
    text_hidden: int = 512  # text MLP hidden size
    temperature: float = 0.07  # fixed tau; logits = exp(log(1/tau)) * cos (not learned, as in the papers)

    def protocol_fields(self) -> dict:
        """The evaluation-protocol fields that make the evaluation model this architecture."""
        return {"image_arch": self.image_arch, "width": self.width, "depth": self.depth, "norm": self.norm,
                "embed_dim": self.embed_dim, "text_hidden": self.text_hidden}

    def as_dict(self) -> dict:
        return asdict(self)


def build_model(net: VLNetConfig, image_shape: tuple[int, ...], text_dim: int) -> DualEncoder:
    proto = RetrievalProtocol(**net.protocol_fields(), temperature=net.temperature, learn_temperature=False)
    return DualEncoder(proto, tuple(image_shape), int(text_dim))


def _modules(mode: Mode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if mode == "full":
        return ("image_encoder", "image_head"), ("text_head",)
    if mode == "heads":
        return ("image_head",), ("text_head",)
    raise ConfigError(f"expert/student mode must be 'full' or 'heads', got {mode!r}")


class FlatDualEncoder:
    """A :class:`DualEncoder` driven by a flat parameter vector θ (image branch first).

    ``logits(theta, image_input, text)`` runs the model with θ in place of the trainable parameters via
    :func:`torch.func.functional_call`; gradients flow to θ and to the inputs. ``image_input`` is pixels in
    ``full`` mode and frozen-encoder features (:meth:`encode_frozen`) in ``heads`` mode.
    """

    def __init__(self, model: DualEncoder, mode: Mode, temperature: float = 0.07) -> None:
        self.model = model
        self.mode: Mode = mode
        self.log_scale = log_scale_of(temperature)
        img_mods, txt_mods = _modules(mode)
        self.branch_modules = {"image": img_mods, "text": txt_mods}
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []
        counts = {}
        for branch, mods in self.branch_modules.items():
            c = 0
            for m in mods:
                for n, p in getattr(model, m).named_parameters():
                    self.names.append(f"{m}.{n}")
                    self.shapes.append(p.shape)
                    c += p.numel()
            counts[branch] = c
        self.sizes = (counts["image"], counts["text"])
        self.numels = [int(torch.Size(s).numel()) for s in self.shapes]
        if mode == "heads":
            for p in model.image_encoder.parameters():
                p.requires_grad_(False)

    @property
    def modules(self) -> list[str]:
        return [*self.branch_modules["image"], *self.branch_modules["text"]]

    @property
    def numel(self) -> int:
        return sum(self.sizes)

    def flat(self) -> Tensor:
        params = dict(self.model.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names])

    @torch.no_grad()
    def load(self, theta: Tensor) -> None:
        """Copy θ into the model's parameters (for evaluation or a plain training step)."""
        params = dict(self.model.named_parameters())
        for n, t in zip(self.names, theta.detach().split(self.numels)):
            params[n].copy_(t.view_as(params[n]))

    def _split(self, theta: Tensor) -> dict[str, dict[str, Tensor]]:
        if theta.dim() != 1 or theta.numel() != self.numel:
            raise ConfigError(f"flat parameter vector must be 1-D with {self.numel} elements, got {tuple(theta.shape)}")
        out: dict[str, dict[str, Tensor]] = {}
        for n, t, s in zip(self.names, theta.split(self.numels), self.shapes):
            mod, sub = n.split(".", 1)
            out.setdefault(mod, {})[sub] = t.view(s)
        return out

    def encode_frozen(self, x: Tensor) -> Tensor:
        """Frozen image-encoder features (``heads`` mode); differentiable w.r.t. ``x``."""
        return self.model.image_encoder(x)

    def embed(self, theta: Tensor, image_input: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        p = self._split(theta)
        call = torch.func.functional_call
        if self.mode == "full":
            feats = call(self.model.image_encoder, p["image_encoder"], (image_input,))
        else:
            feats = image_input
        zi = call(self.model.image_head, p["image_head"], (feats,))
        zt = call(self.model.text_head, p["text_head"], (text,))
        return zi, zt

    def logits(self, theta: Tensor, image_input: Tensor, text: Tensor, *, scale_bug: bool = False) -> Tensor:
        zi, zt = self.embed(theta, image_input, text)
        return contrastive_logits(zi, zt, self.log_scale, scale_bug=scale_bug)

    def param_order(self) -> list[list]:
        return [[n, list(s)] for n, s in zip(self.names, self.shapes)]


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
