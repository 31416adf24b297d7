"""Evaluation protocols (classification, retrieval), metrics and results files."""
