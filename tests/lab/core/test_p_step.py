"""Per-agent update rates (`train.sender_p_step`, `train.receiver_p_step`, Rita et al.'s p_step): 0 freezes an agent, 1
steps it on every batch, p in between on about a share p of the batches; the rates vary across the runs of one call."""

import jax
import jax.numpy as jnp
import numpy as np

import lab

TINY = ["game.n_attributes=2", "game.n_values=3", "agents.hidden_size=8", "agents.embedding_size=4", "agents.vocab_size=4",
        "agents.max_len=2", "train.batch_size=8", "train.steps=40", "train.eval_every=40", "train.seeds=4"]


def changed_per_step():
    """`[runs, steps, 2]`: whether the sender's / the receiver's parameters moved at each of 40 steps, for four runs with
    (sender, receiver) p_step = (0, 1), (1, 0), (1, 1), (0.5, 0.5), all in one vmapped call."""
    config = lab.load(overrides=TINY)
    trainer = lab.make_trainer(config)
    hparams = lab.with_values(lab.hparams_from_config(config, 4), {"train.sender_p_step": jnp.array([0.0, 1.0, 1.0, 0.5]),
                                                                  "train.receiver_p_step": jnp.array([1.0, 0.0, 1.0, 0.5])})

    def run(key, hp):
        state = trainer.init(key, hp)

        def step(state, xs):
            key, number = xs
            new, _ = trainer.train_step(state, key, number, hp)
            moved = [jnp.any(jnp.stack([jnp.any(a != b) for a, b in zip(jax.tree.leaves(getattr(new, side)),
                                                                            jax.tree.leaves(getattr(state, side)))]))
                     for side in ("senders", "receivers")]
            return new, jnp.stack(moved)

        return jax.lax.scan(step, state, (jax.random.split(key, 40), jnp.arange(40)))[1]

    return np.asarray(jax.jit(jax.vmap(run))(lab.seed_keys(config), hparams))


def test_p_step_zero_freezes_one_steps_every_batch_and_a_half_about_half():
    moved = changed_per_step()
    assert not moved[0, :, 0].any() and moved[0, :, 1].all()  # sender frozen, receiver every batch
    assert moved[1, :, 0].all() and not moved[1, :, 1].any()
    assert moved[2].all()
    share = moved[3].mean(axis=0)  # 40 batches: 20 expected, 8..32 holds with probability > 0.999
    assert np.all((share >= 0.2) & (share <= 0.8)), share
