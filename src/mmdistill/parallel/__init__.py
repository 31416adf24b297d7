"""Scale-out across processes and machines with torch.distributed.

* :mod:`.context` - join the ``torchrun`` (or SLURM) group, gloo on CPU / nccl for CUDA tensors, a world of one
  otherwise; ``barrier``, ``all_reduce_sum_``, ``all_gather_object``, ``broadcast_object``.
* :mod:`.jobs` - the resumable job list (rank r takes jobs r, r+W, …; atomic outputs; finished jobs skipped;
  rank 0 gathers) behind expert buffers, DAVDD banks and run-directory evaluation (:mod:`mmdistill.runs`,
  ``mmdistill sweep``).
* DM/AVDD class sharding lives in :meth:`mmdistill.distill.dm.DMAV.step`; rank-0-only writes in
  :func:`mmdistill.distill.base.run`.
"""
