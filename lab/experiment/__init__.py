"""The experiment layer: config, building the trainer, training runs, checkpoints, results, sweeps."""
