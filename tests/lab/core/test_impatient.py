"""The impatient listener (LazImpa): log rho averaged over the message's prefixes, in the loss and the reward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
import lab
from lab import config
from lab.core.agents import Agents, AgentsConfig, make_message
from lab.core.rollout import rollout


def prefix_log_rho(receiver, one_hot, episodes, kind):
    """log rho(x | m_<=t) `[B, T]`, from the receiver's reading after each position (independently of the games)."""
    if kind == "reconstruction":
        log_p = receiver.reconstruct(one_hot)  # [B, T, K, V]
        return jnp.take_along_axis(log_p, episodes.target[:, None, :, None], axis=-1)[..., 0].sum(-1)
    log_p = receiver.discriminate(one_hot, episodes.candidates, episodes.shown)  # [B, T, C]
    return jnp.take_along_axis(log_p, episodes.target_index[:, None, None], axis=-1)[..., 0]


def hard_message(symbols: np.ndarray, vocab_size: int):
    one_hot = jax.nn.one_hot(jnp.asarray(symbols), vocab_size)
    return make_message(jnp.zeros_like(one_hot), one_hot)


@pytest.mark.parametrize("kind", ["reconstruction", "discrimination"])
def test_impatient_log_rho_is_the_mean_over_the_prefixes_up_to_the_end(kind):
    game = games.make_game(kind, 2, 3, 5, 4, 2, False)
    agents = Agents(game, AgentsConfig(hidden_size=16, embedding_size=8, vocab_size=5, max_len=4))
    receiver = agents.receiver(agents.init_receiver(jax.random.key(0)))
    objects = games.all_objects(2, 3)
    episodes = game.episodes(jax.random.key(1), game.default_params(objects), jnp.arange(4))
    message = hard_message(np.array([[2, 3, 0, 4], [1, 1, 1, 1], [0, 2, 2, 2], [4, 4, 0, 0]]), 5)
    patient, impatient = rollout(receiver, episodes, message, game), rollout(receiver, episodes, message, game, impatient=True)
    prefixes = np.asarray(prefix_log_rho(receiver, message.one_hot, episodes, kind))  # [4, T]
    ends = [3, 4, 1, 3]  # positions read: up to and including the first EOS, or all of them
    expected = [prefixes[b, :n].mean() for b, n in enumerate(ends)]
    np.testing.assert_allclose(impatient.log_rho, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(patient.log_rho, prefixes[np.arange(4), np.array(ends) - 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(impatient.correct, patient.correct)  # the guess is still read at the end
    assert impatient.log_rho[2] == pytest.approx(patient.log_rho[2])  # a message that ends at once has one prefix


def test_an_impatient_run_trains():
    cfg = config.load(overrides=["train.impatient=true", "game.n_attributes=2", "game.n_values=3", "agents.vocab_size=6",
                                 "agents.max_len=3", "agents.hidden_size=16", "agents.embedding_size=8", "train.steps=20",
                                 "train.eval_every=20", "train.seeds=1", "train.batch_size=16"])
    assert cfg.train.impatient is True
    state, history = lab.train_seeds(cfg)
    assert np.isfinite(np.asarray(history["train"]["loss"])).all()
