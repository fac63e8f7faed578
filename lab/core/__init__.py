"""The jitted core: agents, rollout, estimators, the population, the trainer and its evaluation, metrics.

Imports only `games` and `curricula` (for the sampler slot); everything here is pure JAX.
"""
