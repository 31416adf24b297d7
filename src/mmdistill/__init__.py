"""mmdistill: multimodal dataset distillation and cross-modal knowledge distillation.

The pipeline (see DESIGN.md): data root -> PairedDataset -> Distiller.run() -> SyntheticSet
-> Protocol.evaluate() -> Results.  Heavy modules are imported lazily by the CLI.
"""

__version__ = "0.1.0"
