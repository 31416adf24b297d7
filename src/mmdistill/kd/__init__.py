"""Cross-modal knowledge distillation.

One concept per module:

* :mod:`.fft_bands` - channel-axis rfft band split (the only place FD-CMKD's FFT math lives);
* :mod:`.base` - the loss contract (:class:`~.base.KDLoss`, :class:`~.base.KDInputs`, :class:`~.base.Dims`)
  and the registry ``KD_LOSSES``; :mod:`.registry` imports every loss and names the presets;
* :mod:`.logit_losses` (no-KD, KD, DKD, DIST), :mod:`.feature_losses` (FitNet/Feat, PKD), :mod:`.c2kd`,
  :mod:`.fd_cmkd` - the methods;
* :mod:`.config` - ``KDRunConfig`` (YAML -> dataclass, unknown keys rejected); :mod:`.taps` - nets and their
  declared hook points; :mod:`.views` - the modality-keyed batch over a paired split;
* :mod:`.protocol` - the ``common`` and ``paper`` training protocols (``KDRunConfig.protocol``);
* :mod:`.teacher` - unimodal teachers, trained once and cached under ``cache_dir()/teachers``;
* :mod:`.trainer` - ``run_kd(cfg, out)`` / ``mmdistill kd``: teacher, student, loss, last-epoch test;
* :mod:`.similarity` - control (1), the low/high cross-modal similarity analysis.

Python use::

    from mmdistill.config import load_config
    from mmdistill.kd.config import KDRunConfig
    from mmdistill.kd.trainer import run_kd
    cfg = load_config(KDRunConfig, "configs/kd/fd-cmkd_av-digits-hard.yaml", ["method=kd", "seeds=[0]"])
    res = run_kd(cfg, "runs/kd-demo")          # Results: student_acc / teacher_acc mean +- std, protocol
"""
