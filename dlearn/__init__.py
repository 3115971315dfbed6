"""dlearn: deform-and-learn, 3D body shape and pose from dense image-to-surface correspondences."""

__version__ = "0.1.0"
