"""Iterated learning: chains of generations, each learning its language from the previous one's speaker.

Generation g of a chain (Kirby et al. 2015; neural iterated learning, Ren et al. 2020; ../shared/science/teaching.md §3, 06):

1. learning: a fresh student sender is distilled from the teacher (generation g - 1's speaker; the
   chain's start for g = 1) as the `transmission` section says: its data (offline: a corpus of
   `samples_per_object` messages for each of `n_objects` train objects, the transmission bottleneck;
   `n_objects=0` shows every train object), its loss, its steps;
2. expressivity (optional, `iterated.interact_steps > 0`): a fresh listener first learns the new
   speaker's language alone (at most `iterated.listener_steps`, early-stopped), then the two play the
   game together for `interact_steps` steps of the lab's trainer (the `train` section: REINFORCE or
   Gumbel), as NIL's interacting phase;
3. the speaker is measured (`Chains.measure`) and becomes generation g + 1's teacher.

The start (generation 0) is a freshly initialised sender (`iterated.start=random`, as NIL) or the oracle
language (`start=oracle`, e.g. a holistic one: does structure appear?). Every generation's speaker,
the start included, is measured on the world's objects: topsim, posdis, bosdis and the distinct share
of its greedy language over every object; a fresh listener taught its language on the train objects
gives its ease of teaching, its expressivity (the listener's accuracy on the train objects) and its
hold-out accuracy (on the test objects); `kind` (0 degenerate, 1 holistic, 2 compositional,
lab.transmission.language.kind_of).

`Chains.run(key, hparams)` is one chain, pure: `jax.jit(jax.vmap(chains.run))(keys, hparams)` runs
chains x seeds in one compiled call (`run_chains`). The generations are a `lax.scan` whose carry is
the speaker's parameters: what generation g hands generation g + 1 is exactly its student's weights.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lab.core.optim import adam_init, learning_rates
from lab.core.refit import fit_receiver
from lab.core.spec import Spec
from lab.core.trainer import Trainer
from lab.transmission import config as transmission_config
from lab.transmission.distill import Distiller, speak
from lab.transmission.language import kind_of, structure, teach
from lab.transmission.oracle import oracle_sender

# what each key folded from a generation's key is for
OBJECTS, CORPUS, STUDENT, LEARN, LISTENER, FIT, PLAY, TEACH = range(8)


class Chains:
    """The static part of a config's chains; `trainer` (lab.experiment.build.make_trainer of the same config) plays the
    expressivity phase and is needed only when `iterated.interact_steps > 0`."""

    def __init__(self, config, trainer: Trainer | None = None):
        transmission_config.check(config)
        t, i, g = config.transmission, config.iterated, config.game
        if i.interact_steps > 0 and trainer is None:
            raise ValueError("iterated.interact_steps > 0: the expressivity phase needs the config's trainer")
        self.config, self.trainer = config, trainer
        self.spec = spec = trainer.spec if trainer is not None else Spec(config)
        self.agents, self.game, world = spec.agents, spec.game, spec.world
        self.oracle = None
        if i.start == "oracle":
            self.oracle = oracle_sender(t.oracle, world.objects, g.n_values, config.agents.vocab_size, config.agents.max_len,
                                        t.oracle_noise, g.seed)
        self.objects, self.train_objects = jnp.asarray(world.objects), jnp.asarray(world.train_objects)
        self.n_objects = t.bottleneck(len(world.train))
        self.distiller = Distiller(self.agents, t.data, t.loss, t.steps, t.batch_size, 2)
        self.train_env = self.game.default_params(world.train_objects)
        self.episodes = {"train": spec.split_episodes("train"), "test": spec.split_episodes("test")}

    def learn(self, key: jax.Array, teacher, lr: jax.Array):
        """`(student_params, loss)`: a fresh student distilled from `teacher` on this generation's bottleneck."""
        t = self.config.transmission
        pool = self.train_objects[jax.random.permutation(jax.random.fold_in(key, OBJECTS), self.train_objects.shape[0])
                                  [:self.n_objects]]
        data = speak(teacher, pool, t.samples_per_object, jax.random.fold_in(key, CORPUS)) if t.data == "offline" else pool
        start = self.agents.init_sender(jax.random.fold_in(key, STUDENT))
        params, history = self.distiller.run(jax.random.fold_in(key, LEARN), teacher, data, start, lr)
        return params, history["loss"][-1]

    def interact(self, key: jax.Array, speaker_params, hparams):
        """`(speaker_params, pair accuracy)` after the expressivity phase (module doc)."""
        i, c = self.config.iterated, self.config.interventions
        hp = hparams["train"]
        listener = self.agents.init_receiver(jax.random.fold_in(key, LISTENER))
        fit = fit_receiver(self.agents, self.game, speaker_params, listener, adam_init(listener, learning_rates(hp)[1], hp),
                           self.train_env, jax.random.fold_in(key, FIT), self.config.train.batch_size, i.listener_steps,
                           c.refit_patience, c.refit_tolerance)
        trainer = self.trainer
        state = trainer.init(jax.random.fold_in(key, PLAY), hparams,
                             agents=jax.tree.map(lambda leaf: leaf[None], (speaker_params, fit.receiver)))

        def step(state, xs):
            key, number = xs
            state, summary = trainer.train_step(state, key, number, hparams)
            return state, summary["accuracy"]

        keys = jax.random.split(jax.random.fold_in(key, PLAY + 100), i.interact_steps)
        state, accuracy = jax.lax.scan(step, state, (keys, jnp.arange(i.interact_steps)))
        return jax.tree.map(lambda leaf: leaf[0], state.senders), jnp.mean(accuracy[-max(1, i.interact_steps // 10):])

    def measure(self, key: jax.Array, speaker, lr: jax.Array) -> dict:
        """The speaker's language (module doc): structure over every object, then a fresh listener taught it."""
        c, i = self.config, self.config.iterated
        out = structure(speaker, self.objects, c.game.n_values)
        key_listener, key_teach = jax.random.split(jax.random.fold_in(key, TEACH))
        taught = teach(self.agents, self.game, speaker, self.agents.init_receiver(key_listener), self.train_env,
                       self.episodes, key_teach, c.transmission.teach_steps, c.transmission.batch_size, lr)
        out.update(ease_of_teaching=taught["ease_of_teaching"], expressivity=taught["train_accuracy"],
                   holdout_accuracy=taught["test_accuracy"])
        out["kind"] = kind_of(out["distinct"], out["topsim"], i.distinct_min, i.topsim_min).astype(jnp.float32)
        return out

    def generation(self, key: jax.Array, teacher, hparams):
        """`(speaker_params, info)`: one generation learning from `teacher` (a Sender), then its expressivity phase;
        `info`: the learning's last loss and the pair's accuracy at the end of the game (NaN without one)."""
        params, loss = self.learn(key, teacher, hparams["transmission"]["lr"])
        pair = jnp.full((), jnp.nan)
        if self.config.iterated.interact_steps > 0:
            params, pair = self.interact(key, params, hparams)
        return params, {"learning_loss": loss, "pair_accuracy": pair}

    def run(self, key: jax.Array, hparams):
        """One chain: `(last speaker's params, history)`, `history[name] [generations + 1]`, generation 0 the start.

        Generation g (from 1) learns with key g of `split(key, generations + 1)` and is measured with it; the start is
        measured with key 0. The scan measures the current speaker, then makes the next (not after the last): the
        measures are one program for every generation."""
        G = self.config.iterated.generations
        lr = hparams["transmission"]["lr"]
        keys = jax.random.split(key, G + 1)
        none = {"learning_loss": jnp.full((), jnp.nan), "pair_accuracy": jnp.full((), jnp.nan)}
        first, start = 0, []
        if self.oracle is not None:  # the oracle speaks at generation 0: measured, and taught, outside the scan
            start = [{**self.measure(keys[0], self.oracle, lr), **none}]
            params, info = self.generation(keys[1], self.oracle, hparams)
            first = 1
        else:
            params, info = self.agents.init_sender(keys[0]), none

        def step(carry, xs):
            params, info = carry
            g, key, next_key = xs
            measured = {**self.measure(key, self.agents.sender(params), lr), **info}
            # `g` comes with the scan, unbatched under vmap: a real branch, no generation after the last
            carry = jax.lax.cond(g < G, lambda p: self.generation(next_key, self.agents.sender(p), hparams),
                                 lambda p: (p, none), params)
            return carry, measured

        generations = jnp.arange(first, G + 1)
        (params, _), history = jax.lax.scan(step, (params, info), (generations, keys[first:],
                                                                   keys[jnp.minimum(generations + 1, G)]))
        if start:
            history = {name: jnp.concatenate([jnp.stack([start[0][name]]), values]) for name, values in history.items()}
        return params, history


def run_chains(chains: Chains, keys: jax.Array, hparams):
    """Every chain of `keys [n]` and `hparams` (leaves `[n]`) in one compiled call: `(params, history)`, numpy,
    `history[name] [n, generations + 1]`."""
    params, history = jax.jit(jax.vmap(chains.run))(keys, hparams)
    return jax.device_get(params), {name: np.asarray(value) for name, value in history.items()}
