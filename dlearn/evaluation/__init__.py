"""Evaluation: 3D joint error metrics and the per-round evaluation stage."""
