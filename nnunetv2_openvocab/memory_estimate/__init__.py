"""Peak device memory of a training step or a sliding-window tile, measured on fake tensors (no allocation)."""
