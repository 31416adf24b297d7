"""Coreset baselines: random, herding, k-center, forgetting."""
