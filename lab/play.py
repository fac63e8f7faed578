"""`lab play RUN_DIR`: a person plays one role of the game against a trained agent.

The trained agent becomes a gymnasium partner (`games.gym.LewisEnv`): as the speaker it says
its greedy message; as the listener it reads the message and guesses where it ends.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import games
import games.gym  # registers the gymnasium ids
from lab.core.rollout import guess_log_probs
from lab.experiment import checkpoint
from lab.experiment.config import Config, ConfigError
from lab.experiment.run import read_config


def _batched(fn, n_leading_single: int):
    """Call a batched function on one episode too (add and drop a leading axis)."""

    def call(*arrays):
        arrays = [np.asarray(a) for a in arrays]
        single = arrays[0].ndim == n_leading_single
        if single:
            arrays = [a[None] for a in arrays]
        out = np.asarray(fn(*[jnp.asarray(a) for a in arrays]))
        return out[0] if single else out

    return call


def trained_partners(config: Config, checkpoint_path: str | Path, index: int = 0):
    """(speaker partner, listener partner) from one seed of a run, as numpy callables."""
    sender, receiver = checkpoint.load_agents(checkpoint_path, config, index)
    vocab_size = config.agents.vocab_size

    @jax.jit
    def speak(targets):
        return sender.greedy(targets).symbols

    @jax.jit
    def listen(messages, candidates):
        episodes = games.EnvState(target=jnp.zeros((messages.shape[0], config.game.n_attributes), jnp.int32),
                                  candidates=candidates, target_index=jnp.zeros(messages.shape[0], jnp.int32), message=messages,
                                  turn=jnp.ones(messages.shape[0], jnp.int32), shown=jnp.ones(candidates.shape[:2], bool))
        return jnp.argmax(guess_log_probs(receiver, jax.nn.one_hot(messages, vocab_size), episodes, config.game.kind), -1)

    return _batched(speak, 1), _batched(listen, 1)


def make_env(run_dir: str | Path, role: str, index: int = 0) -> gymnasium.Env:
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    speaker, listener = trained_partners(config, run_dir / checkpoint.FILENAME, index)
    g, a = config.game, config.agents
    game_id = games.gym.RECONSTRUCTION_ID if g.kind == "reconstruction" else games.gym.DISCRIMINATION_ID
    world = games.world_of(g)
    return gymnasium.make(game_id, n_attributes=g.n_attributes, n_values=g.n_values, vocab_size=a.vocab_size,
                          max_len=a.max_len, n_distractors=g.n_distractors, hard_negatives=g.hard_negatives,
                          objects=world.objects, role=role, partner=listener if role == "speaker" else speaker,
                          render_mode="ansi")


def _read_action(env, prompt: str, stdin: TextIO, stdout: TextIO):
    space = env.action_space
    while True:
        stdout.write(prompt)
        stdout.flush()
        line = stdin.readline()
        if not line:
            return None
        try:
            values = [int(v) for v in line.split()]
            action = np.array(values if isinstance(space, gymnasium.spaces.MultiDiscrete) else values[0], dtype=np.int64)
            if isinstance(space, gymnasium.spaces.MultiDiscrete) and action.shape != space.shape:
                # a short message is padded with EOS
                action = np.concatenate([action, np.zeros(space.shape[0] - action.size, np.int64)])[: space.shape[0]]
            if space.contains(action):
                return action
        except (ValueError, IndexError):
            pass
        stdout.write(f"  not a valid action; allowed: {space}\n")


def play(run_dir: str | Path, role: str = "speaker", rounds: int = 5, index: int = 0, seed: int = 0,
         stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> float:
    """Play `rounds` episodes from the terminal; returns the person's mean reward."""
    if role not in ("speaker", "listener"):
        raise ConfigError(f"--role {role!r}: allowed values are speaker, listener")
    env = make_env(run_dir, role, index)
    prompt = ("your message (symbols 1.. separated by spaces, 0 = EOS): " if role == "speaker" else
              "your guess (one value per attribute): " if isinstance(env.action_space, gymnasium.spaces.MultiDiscrete)
              else "your guess (candidate number): ")
    rewards = []
    env.reset(seed=seed)
    for _ in range(rounds):
        stdout.write(env.render() + "\n")
        action = _read_action(env, prompt, stdin, stdout)
        if action is None:
            break
        _, reward, _, _, _ = env.step(action)
        rewards.append(reward)
        stdout.write(env.render() + "\n\n")
        env.reset()
    score = float(np.mean(rewards)) if rewards else 0.0
    stdout.write(f"mean reward over {len(rewards)} rounds: {score:.2f}\n")
    return score
