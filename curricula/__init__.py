"""Curriculum schedulers: samplers of the trainer, pure JAX, depending on nothing but `games`."""

from curricula.base import Sampler, Stats, distribution_entropy, identity

__all__ = ["Sampler", "Stats", "identity", "distribution_entropy"]
