"""The experiment layer: config, building the trainer, running populations, checkpoints, results, sweeps."""
