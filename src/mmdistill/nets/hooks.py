"""Feature taps by dotted module path, torchdistill style.

    with FeatureTap(net, ["layer4", "relu4"]) as tap:
        logits = net(x)
    pre, post = tap.features["layer4"], tap.features["relu4"]

Each path names a submodule as in ``named_modules()`` (``""`` is the module itself). ``io="output"``
records its output, ``io="input"`` its first positional input. Features keep their autograd graph (KD
losses backpropagate through them); each forward pass overwrites the previous one's. Hooks are removed on
exit. The nets never use in-place activations, so a tapped tensor is not modified by later layers.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..errors import ConfigError

IOS = ("output", "input")


class FeatureTap:
    def __init__(self, module: nn.Module, paths: list[str], io: str = "output") -> None:
        if io not in IOS:
            raise ConfigError(f"FeatureTap: io must be one of {', '.join(IOS)}, got {io!r}")
        if isinstance(paths, str):
            raise ConfigError(f"FeatureTap: paths must be a list of module paths, got the string {paths!r}")
        modules = dict(module.named_modules())
        for path in paths:
            if path not in modules:
                close = difflib.get_close_matches(path, list(modules), n=5, cutoff=0.5)
                hint = f"; close names: {', '.join(close)}" if close else ""
                raise ConfigError(f"FeatureTap: {type(module).__name__} has no submodule {path!r}{hint}")
        self.module = module
        self.paths = list(paths)
        self.io = io
        self.features: dict[str, Tensor] = {}
        self._targets = {p: modules[p] for p in self.paths}
        self._handles: list[RemovableHandle] = []

    def _hook(self, path: str) -> Any:
        def hook(_mod: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            self.features[path] = output if self.io == "output" else inputs[0]

        return hook

    def __enter__(self) -> FeatureTap:
        self.features.clear()
        self._handles = [m.register_forward_hook(self._hook(p)) for p, m in self._targets.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
