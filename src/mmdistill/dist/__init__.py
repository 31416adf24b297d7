"""Scale-out across processes and machines with torch.distributed (spec ecosystem.md §C)."""
