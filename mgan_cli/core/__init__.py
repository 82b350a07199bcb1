"""The method itself, tensors in and tensors out: the engine, composition, losses, degradations, tuning."""
