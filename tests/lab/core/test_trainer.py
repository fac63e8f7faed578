"""lab.train: learning happens, runs are reproducible, a population equals separate runs, the seams work.

Each fixture compiles one training function once for the module (tiny worlds: K=2, V=4, GRU-32); a
compile costs ~25 s of CPU, which is why variations share fixtures. Run with `--dist loadfile` (the
default in pyproject.toml) so that `-n 2` does not compile them on both workers.
"""

import itertools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
from lab import config
from lab.train import Trainer, TrainState, hparams_from_config, seed_keys, train_population

# 16 objects, 13 in train; vocabulary 16 (EOS included), messages of up to 3 symbols
BASE = ["game.n_attributes=2", "game.n_values=4", "agents.hidden_size=32", "agents.vocab_size=16",
        "agents.max_len=3", "train.batch_size=64", "train.seeds=4"]
LEARN = BASE + ["train.steps=1500", "train.eval_every=250"]


class Population(NamedTuple):
    cfg: config.Config
    trainer: Trainer
    run: Callable | None  # jit(vmap(trainer.train)) if kept: (keys [n], hparams [n]) -> (state, history)
    state: TrainState  # leaves [seeds, ...]
    history: dict  # history[split][metric]: [seeds, evaluations], numpy


def population(overrides, keep_compiled: bool = False) -> Population:
    """`train_population`, or what it does while keeping the compiled function for more calls."""
    cfg = config.load(overrides=overrides)
    trainer = Trainer(cfg)
    if not keep_compiled:
        state, history = train_population(cfg, trainer)
        return Population(cfg, trainer, None, state, jax.device_get(history))
    run = jax.jit(jax.vmap(trainer.train))
    keys = seed_keys(cfg)
    state, history = run(keys, hparams_from_config(cfg, len(keys)))
    return Population(cfg, trainer, run, state, jax.device_get(history))


@pytest.fixture(scope="module")
def reinforce():
    return population(LEARN + ["train.mode=reinforce", "train.lr=0.005"])


@pytest.fixture(scope="module")
def gumbel():
    return population(LEARN + ["train.mode=gumbel", "train.lr=0.002"])


@pytest.fixture(scope="module")
def discrimination_lstm():
    """Discrimination with LSTM agents: two variations of the spine in one compile (each costs ~25 s of CPU).

    27 objects, 22 in train; the listener picks the target among 5 candidates (chance 0.2).
    """
    return population(BASE + ["game.kind=discrimination", "game.n_attributes=3", "game.n_values=3",
                              "game.n_distractors=4", "agents.cell=lstm", "train.lr=0.002",
                              "train.steps=3000", "train.eval_every=500"])


@pytest.fixture(scope="module")
def short():
    """A few steps only: batched and unbatched float noise stays far below the tolerance."""
    return population(BASE + ["train.seeds=3", "train.steps=40", "train.eval_every=20", "train.lr=0.005"], keep_compiled=True)


def assert_most_seeds_learn(history, threshold=0.95):
    final = history["train"]["accuracy"][:, -1]
    assert np.sum(final >= threshold) > len(final) / 2, f"final train accuracy per seed: {final}"


def assert_accuracy_rises(history, by):
    accuracy = history["train"]["accuracy"]
    assert np.all(accuracy[:, -1] >= accuracy[:, 0] + by), f"first {accuracy[:, 0]}, last {accuracy[:, -1]}"


def tree_max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)), initial=0.0))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# -- learning happens ------------------------------------------------------------------------------


def test_reinforce_reconstruction_learns(reinforce):
    _, _, _, _, history = reinforce
    assert_most_seeds_learn(history)
    assert_accuracy_rises(history, by=0.5)


def test_gumbel_reconstruction_learns(gumbel):
    _, _, _, _, history = gumbel
    assert_most_seeds_learn(history)
    assert_accuracy_rises(history, by=0.5)


def test_discrimination_with_four_distractors_learns(discrimination_lstm):
    cfg, trainer, _, _, history = discrimination_lstm
    assert trainer.eval_episodes["train"].candidates.shape[1] == cfg.game.n_distractors + 1
    assert np.all(history["train"]["accuracy"][:, 0] < 0.4)  # near chance (0.2) before training
    assert_most_seeds_learn(history, threshold=0.9)  # 20 of the 22 train objects
    assert_accuracy_rises(history, by=0.5)


def test_lstm_cell_learns(discrimination_lstm):
    cfg, _, _, state, history = discrimination_lstm
    hidden = cfg.agents.hidden_size
    for agent in (state.sender, state.receiver):
        assert agent["cell"]["w_hidden"][...].shape[-1] == 4 * hidden  # the LSTM's four gates
    assert np.all(history["train"]["accuracy"][:, -1] >= 0.75)


def test_metrics_have_one_value_per_seed_and_evaluation(reinforce):
    cfg, trainer, _, _, history = reinforce
    shape = (cfg.train.seeds, cfg.train.steps // cfg.train.eval_every + 1)
    np.testing.assert_array_equal(trainer.eval_steps, np.arange(0, cfg.train.steps + 1, cfg.train.eval_every))
    assert set(history) == {"train", "test"}
    for split, values in history.items():
        assert {"accuracy", "loss", "topsim", "posdis", "bosdis", "message_length", "vocab_use"} <= set(values)
        for name, value in values.items():
            assert value.shape == shape, (split, name)
            assert np.all(np.isfinite(value)), (split, name)
        assert np.all((values["accuracy"] >= 0) & (values["accuracy"] <= 1))
        assert np.all(np.abs(values["topsim"]) <= 1 + 1e-6)
        assert np.all((values["message_length"] >= 1) & (values["message_length"] <= cfg.agents.max_len))


# -- reproducibility and populations ---------------------------------------------------------------


def test_same_seed_same_config_same_numbers(short):
    """Running again gives the same bits, and a fresh Trainer for the same config builds the same program.

    (XLA compiles a program deterministically, so the second half stands in for a second compile, ~25 s.)
    """
    cfg, _, run, state, history = short
    keys, hparams = seed_keys(cfg), hparams_from_config(cfg, cfg.train.seeds)
    state_again, history_again = run(keys, hparams)
    assert tree_max_abs_diff(history, jax.device_get(history_again)) == 0.0
    assert tree_max_abs_diff(state.sender, state_again.sender) == 0.0
    assert tree_max_abs_diff(state.receiver, state_again.receiver) == 0.0

    program = run.lower(keys, hparams).as_text()
    fresh = Trainer(config.load(overrides=[f"{section}.{name}={value}" for section, fields in config.to_dict(cfg).items()
                                           for name, value in fields.items()]))
    assert jax.jit(jax.vmap(fresh.train)).lower(keys, hparams).as_text() == program


def test_seeds_of_a_population_differ(short):
    _, _, _, state, history = short
    kernels = np.asarray(state.sender["encoder"]["kernel"][...])
    assert not np.allclose(kernels[0], kernels[1])
    assert len(set(np.round(history["train"]["loss"][:, -1], 6))) == len(kernels)


def test_population_equals_separate_runs(short):
    cfg, trainer, _, state, history = short
    train_one = jax.jit(trainer.train)
    hparams = hparams_from_config(cfg)
    for i, key in enumerate(seed_keys(cfg)):
        state_one, history_one = jax.device_get(train_one(key, hparams))
        for split, values in history_one.items():
            for name, value in values.items():
                np.testing.assert_allclose(history[split][name][i], value, rtol=1e-5, atol=1e-5, err_msg=f"seed {i} {split} {name}")
        # Adam divides by sqrt(v): last-bit differences in tiny gradients show up larger in the parameters
        seed_i = jax.tree.map(lambda leaf: leaf[i], (state.sender, state.receiver))
        assert tree_max_abs_diff(seed_i, (state_one.sender, state_one.receiver)) < 1e-4


def test_population_members_follow_their_own_hyperparameters(short):
    """Same key three times; the middle member has learning rate 0, so it keeps its initial parameters."""
    cfg, trainer, run, state, _ = short
    key = seed_keys(cfg)[0]
    keys = jnp.stack([key, key, key])
    hparams = hparams_from_config(cfg, 3)
    lrs = jnp.array([cfg.train.lr, 0.0, cfg.train.lr])
    final, _ = run(keys, hparams.replace(sender_lr=lrs, receiver_lr=lrs))
    initial = trainer.init(jax.random.split(key, 3)[0], hparams_from_config(cfg))  # train's own key split
    member = lambda tree, i: jax.tree.map(lambda leaf: leaf[i], tree)  # noqa: E731
    # vmapped and unbatched initialisations may differ in the last bit
    assert tree_max_abs_diff(member(final.sender, 1), initial.sender) < 1e-6
    assert tree_max_abs_diff(member(final.receiver, 1), initial.receiver) < 1e-6
    assert tree_max_abs_diff(member(final.sender, 0), member(state.sender, 0)) < 1e-5  # same as in the population
    assert tree_max_abs_diff(member(final.sender, 0), initial.sender) > 1e-3


# -- messages --------------------------------------------------------------------------------------


class Untrained(NamedTuple):
    cfg: config.Config
    sender: object  # lab.agents.Sender
    objects: jax.Array  # [512, K]
    messages: dict  # how -> lab.agents.Message for `objects`


@pytest.fixture(scope="module")
def untrained(short) -> Untrained:
    """A freshly initialised sender (its messages end at random positions), 512 targets and its messages."""
    cfg, trainer, _, _, _ = short
    state = trainer.init(jax.random.key(7), hparams_from_config(cfg))
    sender = trainer.sender(state.sender)
    objects = jnp.asarray(trainer.world.objects)[jax.random.randint(jax.random.key(8), (512,), 0, len(trainer.world.objects))]
    key = jax.random.key(9)
    messages = {"sample": sender.sample(objects, key), "greedy": sender.greedy(objects),
                "gumbel": sender.gumbel(objects, key, jnp.float32(0.5))}
    return Untrained(cfg, sender, objects, messages)


def first_eos(symbols: np.ndarray) -> np.ndarray:
    """Index of the first 0 of each row, or the length of the row."""
    return np.array([next((t for t, s in enumerate(row) if s == 0), len(row)) for row in symbols])


@pytest.mark.parametrize("how", ["sample", "greedy", "gumbel"])
def test_messages_follow_the_conventions(untrained, how):
    cfg, _, objects, messages = untrained
    message = messages[how]
    symbols = np.asarray(message.symbols)
    batch, max_len, vocab = len(objects), cfg.agents.max_len, cfg.agents.vocab_size
    assert symbols.shape == (batch, max_len) and np.issubdtype(symbols.dtype, np.integer)
    assert message.one_hot.shape == (batch, max_len, vocab)
    assert message.log_prob.shape == message.entropy.shape == (batch,)
    assert symbols.min() >= 0 and symbols.max() < vocab

    ends = first_eos(symbols)
    after = np.arange(max_len)[None, :] > ends[:, None]
    assert np.all(symbols[after] == 0), "a symbol after the first EOS"
    np.testing.assert_array_equal(np.asarray(message.alive), np.arange(max_len)[None, :] <= ends[:, None])
    np.testing.assert_array_equal(np.asarray(games.message_length(message.symbols)), np.minimum(ends + 1, max_len))
    np.testing.assert_array_equal(np.asarray(games.truncate_at_eos(message.symbols)), symbols)
    if how != "greedy":  # sampled messages exercise the convention: early ends, and padding that replaced symbols
        assert np.any(ends < max_len - 1)
        raw = np.asarray(jnp.argmax(message.one_hot, -1))
        assert np.any(raw[after] != 0), "nothing to pad: the test would pass vacuously"
        np.testing.assert_array_equal(symbols[~after], raw[~after])


def test_teacher_forced_log_prob_equals_the_sampled_one(untrained):
    _, sender, objects, messages = untrained
    symbols = jnp.concatenate([m.symbols for m in messages.values()])
    log_prob = jnp.concatenate([m.log_prob for m in messages.values()])
    forced = sender.log_prob(jnp.concatenate([objects] * len(messages)), symbols)
    np.testing.assert_allclose(forced, log_prob, rtol=1e-5, atol=1e-5)
    assert np.all(np.asarray(forced) <= 0)


def test_log_prob_is_a_distribution_over_all_messages(untrained):
    """sum_m pi(m|x) = 1 over every message the convention allows (EOS at t: t symbols then 0...; or max_len symbols)."""
    cfg, sender, objects, _ = untrained
    max_len, vocab = cfg.agents.max_len, cfg.agents.vocab_size
    messages = jnp.asarray([list(body) + [0] * (max_len - len(body))
                            for length in range(max_len + 1) for body in itertools.product(range(1, vocab), repeat=length)])
    n = len(messages)  # 1 + 15 + 15^2 + 15^3
    targets = objects[:2]
    log_p = sender.log_prob(jnp.repeat(targets, n, axis=0), jnp.tile(messages, (len(targets), 1))).reshape(len(targets), n)
    np.testing.assert_allclose(np.asarray(jax.nn.logsumexp(log_p, axis=1)), 0.0, atol=1e-4)


# -- seams: per-example weights (DRO) and the target distribution (curricula) ----------------------


class TargetsTrainer(Trainer):
    """Shows the batch's targets in the step's aux output."""

    def loss(self, params, batch, *args):
        total, aux = super().loss(params, batch, *args)
        return total, {**aux, "targets": batch.target}


@pytest.fixture(scope="module")
def seam(short):
    cfg = short.cfg
    trainer = TargetsTrainer(cfg)
    hparams = hparams_from_config(cfg)
    state = trainer.init(jax.random.key(11), hparams)
    return cfg, trainer, hparams, state, jax.jit(trainer.train_step)


def test_default_weights_are_uniform(seam):
    cfg, _, hparams, state, step = seam
    key = jax.random.key(12)
    uniform = jnp.full(cfg.train.batch_size, 1.0 / cfg.train.batch_size)
    default_state, default_aux = step(state, key, hparams)
    weighted_state, weighted_aux = step(state, key, hparams, uniform)
    assert tree_max_abs_diff(default_state, weighted_state) == 0.0
    assert tree_max_abs_diff(default_aux, weighted_aux) == 0.0
    assert tree_max_abs_diff(default_state.sender, state.sender) > 0.0  # the step did something


def test_zero_weights_remove_examples_from_the_gradient(seam):
    """Zero weight on the second half of the batch: what that half holds no longer moves the gradient."""
    cfg, trainer, hparams, state, _ = seam
    batch_size, half, n_values = cfg.train.batch_size, cfg.train.batch_size // 2, cfg.game.n_values
    params = games.EnvParams(objects=jnp.asarray(trainer.world.train_objects), probs=state.probs)
    batch = trainer.game.sample_batch(jax.random.key(13), params, batch_size)
    changed_targets = batch.target.at[half:].set((batch.target[half:] + 1) % n_values)
    changed = batch.replace(target=changed_targets, candidates=changed_targets[:, None, :])
    assert batch.candidates.shape == changed.candidates.shape

    key = jax.random.key(14)
    grad = jax.jit(jax.grad(lambda p, b, w: trainer.loss(p, b, w, jnp.zeros(()), key, hparams)[0]))
    p = (state.sender, state.receiver)
    uniform = jnp.full(batch_size, 1.0 / batch_size)
    first_half = jnp.concatenate([jnp.full(half, 1.0 / half), jnp.zeros(batch_size - half)])

    assert tree_max_abs_diff(grad(p, batch, first_half), grad(p, changed, first_half)) < 1e-7
    assert tree_max_abs_diff(grad(p, batch, uniform), grad(p, changed, uniform)) > 1e-4
    assert tree_max_abs_diff(grad(p, batch, first_half), grad(p, batch, uniform)) > 1e-4


def test_targets_are_drawn_from_the_state_probs(seam):
    cfg, trainer, hparams, state, step = seam
    train_objects = trainer.world.train_objects
    np.testing.assert_allclose(np.asarray(state.probs), trainer.world.train_probs, rtol=1e-6)
    np.testing.assert_allclose(float(state.probs.sum()), 1.0, rtol=1e-6)

    _, aux = step(state, jax.random.key(15), hparams)
    assert len(np.unique(np.asarray(aux["targets"]), axis=0)) > 1  # the uniform default mixes objects
    for j in (0, len(train_objects) - 1):
        one_object = jnp.zeros_like(state.probs).at[j].set(1.0)
        _, aux = step(state.replace(probs=one_object), jax.random.key(16 + j), hparams)
        targets = np.asarray(aux["targets"])
        assert targets.shape == (cfg.train.batch_size, cfg.game.n_attributes)
        assert np.all(targets == train_objects[j]), f"every target should be train object {j}"
