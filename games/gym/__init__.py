"""gymnasium adapters (import `games.gym`, or let gymnasium load them by id): play one role of a Lewis game against a fixed partner.

The agent is the speaker or the listener; the other role is played by a *partner*, a plain
callable on numpy integer arrays, so a trained agent, a hand-written code or a script can sit
on the other side:

* partner speaker:  `partner(target: [..., K]) -> message: [..., max_len]`
* partner listener: `partner(message: [..., max_len], candidates: [..., C, K]) -> guess`,
  the guess `[..., K]` in reconstruction (where `candidates` is empty, C = 0, so the listener
  is not handed the target) and `[...]` in discrimination (an index into the candidates).

`LewisEnv` calls its partner on one episode (no leading axes). `LewisVectorEnv` calls it once
per step on the whole batch (a leading `num_envs` axis), so a partner given to it must accept
batched arrays. The default partner, a fixed compositional code, does both.

Under the hood run the pure functions of `games.lewis`; the partner is reached from inside the
compiled function through `jax.pure_callback`, so one jitted function (vmapped in the vector
env) plays the agent's turn and the partner's turn and scores the episode. It is compiled once
per game structure, role and partner, and shared by every env built alike.

>>> import gymnasium, games.gym                 # importing games.gym registers the ids
>>> env = gymnasium.make("games/LewisReconstruction-v0", role="speaker", render_mode="ansi")
>>> target, info = env.reset(seed=0)
>>> message = games.gym.compositional_message(target, max_len=5)  # the partner's own code
>>> _, reward, terminated, _, info = env.step(message)
>>> reward, terminated, info["success"]
(1.0, True, True)
"""

from __future__ import annotations

import gymnasium

from games.gym.env import RENDER_MODES, ROLES, LewisEnv
from games.gym.episode import Episode, key_from_seed
from games.gym.partners import (
    CompositionalListener,
    CompositionalSpeaker,
    Partner,
    compositional_decode,
    compositional_message,
    compositional_partner,
)
from games.gym.render import render_episode
from games.gym.vector_env import LewisVectorEnv

RECONSTRUCTION_ID = "games/LewisReconstruction-v0"
DISCRIMINATION_ID = "games/LewisDiscrimination-v0"

__all__ = [
    "LewisEnv", "LewisVectorEnv", "Episode", "Partner", "CompositionalSpeaker", "CompositionalListener",
    "compositional_message", "compositional_decode", "compositional_partner", "render_episode", "key_from_seed",
    "register_envs", "ROLES", "RENDER_MODES", "RECONSTRUCTION_ID", "DISCRIMINATION_ID",
]


def register_envs() -> None:
    """Register the two game ids with gymnasium (idempotent)."""
    for env_id, kind in ((RECONSTRUCTION_ID, "reconstruction"), (DISCRIMINATION_ID, "discrimination")):
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point="games.gym:LewisEnv",
                vector_entry_point="games.gym:LewisVectorEnv",
                kwargs={"kind": kind},
            )


register_envs()
