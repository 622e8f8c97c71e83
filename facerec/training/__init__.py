"""Training machinery shared by every model: run folders, checkpoints, progress, schedule, devices, distributed."""
