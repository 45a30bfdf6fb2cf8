"""lifelong: lifelong multimodal instruction tuning with Adapt-inf."""
__version__ = "0.1.0"
