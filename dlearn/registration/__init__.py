"""Deformable registration of the body model to dense correspondences (paper section 4)."""
