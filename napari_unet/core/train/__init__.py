"""Training: planning a run, training data, sampling around annotations, augmentation, losses, the trainer."""
