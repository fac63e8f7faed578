"""lab.core.trainer: learning happens, runs are reproducible, a population of runs equals separate runs,
message conventions hold, and the slots compose (a sampler, an objective, interventions and a 2 x 3
population together, each effect asserted; a component defined here plugs in without a trainer edit).

Each fixture compiles one training function once for the module (tiny worlds: K=2..3, V=3..4, GRU-16..32);
a compile costs 10-30 s of CPU, which is why variations share fixtures. Run with `--dist loadgroup` (the
default in pyproject.toml) so that `-n 2` does not compile them on both workers.
"""

import itertools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import games
import lab
from lab.core.agents import make_message
from lab.core.trainer import Trainer, TrainState

# 16 objects, 13 in train; vocabulary 16 (EOS included), messages of up to 3 symbols
BASE = ["game.n_attributes=2", "game.n_values=4", "agents.hidden_size=32", "agents.vocab_size=16",
        "agents.max_len=3", "train.batch_size=64", "train.seeds=4"]
LEARN = BASE + ["train.steps=1500", "train.eval_every=250"]


class Population(NamedTuple):
    cfg: lab.Config
    trainer: Trainer
    run: Callable | None  # jit(vmap(trainer.train)) if kept: (keys [n], hparams [n]) -> (state, history)
    state: TrainState  # leaves [seeds, ...]
    history: dict  # history[split][metric]: [seeds, evaluations], numpy


def population(overrides, keep_compiled: bool = False) -> Population:
    """`train_seeds`, or what it does while keeping the compiled function for more calls."""
    cfg = lab.load(overrides=overrides)
    trainer = lab.make_trainer(cfg)
    run = jax.jit(jax.vmap(trainer.train))
    keys = lab.seed_keys(cfg)
    state, history = run(keys, lab.hparams_from_config(cfg, len(keys)))
    return Population(cfg, trainer, run if keep_compiled else None, state, jax.device_get(history))


@pytest.fixture(scope="module")
def reinforce():
    return population(LEARN + ["train.mode=reinforce", "train.lr=0.005"])


@pytest.fixture(scope="module")
def gumbel():
    return population(LEARN + ["train.mode=gumbel", "train.lr=0.002"])


@pytest.fixture(scope="module")
def discrimination_lstm():
    """Discrimination with LSTM agents: two variations of the spine in one compile (each costs ~25 s of CPU).

    27 objects, 22 in train; the receiver picks the target among 5 candidates (chance 0.2).
    """
    return population(BASE + ["game.kind=discrimination", "game.n_attributes=3", "game.n_values=3",
                              "game.n_distractors=4", "agents.cell=lstm", "train.lr=0.002",
                              "train.steps=3000", "train.eval_every=500"])


@pytest.fixture(scope="module")
def short():
    """A few steps only: batched and unbatched float noise stays far below the tolerance."""
    return population(BASE + ["train.seeds=3", "train.steps=40", "train.eval_every=20", "train.lr=0.005"], keep_compiled=True)


def assert_accuracy_rises(history, by):
    accuracy = history["train"]["accuracy"]
    assert np.all(accuracy[:, -1] >= accuracy[:, 0] + by), f"first {accuracy[:, 0]}, last {accuracy[:, -1]}"


def tree_max_abs_diff(a, b) -> float:
    """Largest difference of two pytrees; NaN in the same places (no batch statistics at step 0) counts as equal."""
    def diff(x, y):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        both = np.isnan(x) & np.isnan(y)
        return float(np.max(np.where(both, 0.0, np.abs(x - y)), initial=0.0))

    return max(diff(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


# -- learning happens (with margin: XLA's CPU numerics differ across machines) ----------------------


def test_reinforce_reconstruction_learns(reinforce):
    final = reinforce.history["train"]["accuracy"][:, -1]
    assert np.mean(final) >= 0.8 and np.min(final) >= 0.6, f"final train accuracy per seed: {final}"
    assert_accuracy_rises(reinforce.history, by=0.5)


def test_gumbel_reconstruction_learns(gumbel):
    final = gumbel.history["train"]["accuracy"][:, -1]
    assert np.mean(final) >= 0.8 and np.min(final) >= 0.6, f"final train accuracy per seed: {final}"
    assert_accuracy_rises(gumbel.history, by=0.5)


def test_discrimination_with_four_distractors_learns(discrimination_lstm):
    cfg, trainer, _, _, history = discrimination_lstm
    assert trainer.eval_sets.episodes.candidates.shape[2] == cfg.game.n_distractors + 1
    accuracy = history["train"]["accuracy"]
    assert np.all(accuracy[:, 0] < 0.45)  # near chance (0.2) before training
    assert np.mean(accuracy[:, -1]) >= 0.7 and np.min(accuracy[:, -1]) >= 0.5, f"final train accuracy per seed: {accuracy[:, -1]}"
    assert_accuracy_rises(history, by=0.3)


def test_lstm_cell_is_used(discrimination_lstm):
    cfg, _, _, state, _ = discrimination_lstm
    for agents in (state.senders, state.receivers):
        assert agents["cell"]["w_hidden"][...].shape[-1] == 4 * cfg.agents.hidden_size  # the LSTM's four gates


def test_metrics_have_one_value_per_seed_and_evaluation(reinforce):
    cfg, trainer, _, _, history = reinforce
    shape = (cfg.train.seeds, cfg.train.steps // cfg.train.eval_every + 1)
    np.testing.assert_array_equal(trainer.eval_steps, np.arange(0, cfg.train.steps + 1, cfg.train.eval_every))
    assert set(history) == {"train", "test", "batch"}
    for split in ("train", "test"):
        values = history[split]
        assert {"accuracy", "loss", "topsim", "posdis", "bosdis", "message_length", "vocab_use", "l_info", "l_adapt"} <= set(values)
        for name, value in values.items():
            assert value.shape == shape, (split, name)
            assert np.all(np.isfinite(value)), (split, name)
        assert np.all((values["accuracy"] >= 0) & (values["accuracy"] <= 1))
        assert np.all(np.abs(values["topsim"]) <= 1 + 1e-6)
        assert np.all((values["message_length"] >= 1) & (values["message_length"] <= cfg.agents.max_len))
        np.testing.assert_allclose(values["loss"], values["l_info"] + values["l_adapt"], atol=1e-4)
    batch = history["batch"]
    assert np.all(np.isnan(batch["loss"][:, 0])) and np.all(np.isfinite(batch["loss"][:, 1:]))
    # the training batches' accuracy rises with the evaluations', and Adam's steps are about lr-sized
    assert np.all(batch["accuracy"][:, -1] > batch["accuracy"][:, 1])
    assert np.all((batch["sender_update_ratio"][:, 1:] > 0.1) & (batch["sender_adam_v"][:, 1:] > 0))
    np.testing.assert_allclose(batch["weight_mean"][:, 1:], 1.0, rtol=1e-6)


# -- reproducibility and populations of runs --------------------------------------------------------


def test_same_seed_same_config_same_numbers(short):
    """Running again gives the same bits, and a fresh trainer for the same config builds the same program."""
    cfg, _, run, state, history = short
    keys, hparams = lab.seed_keys(cfg), lab.hparams_from_config(cfg, cfg.train.seeds)
    state_again, history_again = run(keys, hparams)
    assert tree_max_abs_diff(history, jax.device_get(history_again)) == 0.0
    assert tree_max_abs_diff((state.senders, state.receivers), (state_again.senders, state_again.receivers)) == 0.0
    program = run.lower(keys, hparams).as_text()
    fresh = lab.make_trainer(lab.load(overrides=[f"{section}.{name}={value}" for section, fields in lab.config.to_dict(cfg).items()
                                                 for name, value in fields.items()]))
    assert jax.jit(jax.vmap(fresh.train)).lower(keys, hparams).as_text() == program


@pytest.mark.parametrize("devices", [1, 2], ids=["one device", "two devices"])
def test_the_runner_gives_the_numbers_of_the_pure_function(short, devices):
    """lab.experiment.execute.train_runs loops over the same block from the host (progress, cache), on a CPU in
    calls of one run a device (3 calls of one, or 2 calls of two with a padding run), with the same numbers."""
    from lab.experiment.execute import train_runs

    cfg, trainer, _, state, history = short
    seen = []
    state_loop, history_loop = train_runs(trainer, lab.seed_keys(cfg), lab.hparams_from_config(cfg, cfg.train.seeds),
                                              devices=jax.local_devices()[:devices],
                                              on_block=lambda index, *_: seen.append(index))
    assert seen == list(range(trainer.n_evals + 1))
    for split, values in history.items():
        for name, value in values.items():
            np.testing.assert_allclose(history_loop[split][name], value, rtol=1e-5, atol=1e-5, err_msg=f"{split} {name}")
    assert tree_max_abs_diff(state_loop.senders, state.senders) < 1e-4


def test_seeds_of_a_population_differ(short):
    kernels = np.asarray(short.state.senders["encoder"]["kernel"][...])
    assert not np.allclose(kernels[0], kernels[1])
    assert len(set(np.round(short.history["train"]["loss"][:, -1], 6))) == len(kernels)


def test_population_equals_separate_runs(short):
    cfg, trainer, _, state, history = short
    train_one = jax.jit(trainer.train)
    hparams = lab.hparams_from_config(cfg)
    for i, key in enumerate(lab.seed_keys(cfg)):
        state_one, history_one = jax.device_get(train_one(key, hparams))
        for split, values in history_one.items():
            for name, value in values.items():
                np.testing.assert_allclose(history[split][name][i], value, rtol=1e-5, atol=1e-5, err_msg=f"seed {i} {split} {name}")
        # Adam divides by sqrt(v): last-bit differences in tiny gradients show up larger in the parameters (up to
        # 1.4e-4 after these 40 steps, 2026-12-03: a tenth of the bound)
        seed_i = jax.tree.map(lambda leaf: leaf[i], (state.senders, state.receivers))
        assert tree_max_abs_diff(seed_i, (state_one.senders, state_one.receivers)) < 1e-3


def test_population_members_follow_their_own_hyperparameters(short):
    """Same key three times; the middle member has learning rate 0, so it keeps its initial parameters."""
    cfg, trainer, run, state, _ = short
    key = lab.seed_keys(cfg)[0]
    keys = jnp.stack([key, key, key])
    lrs = jnp.array([cfg.train.lr, 0.0, cfg.train.lr])
    hparams = lab.with_values(lab.hparams_from_config(cfg, 3), {"train.lr": lrs})
    final, _ = run(keys, hparams)
    initial = trainer.init(trainer.run_keys(key)[0], lab.hparams_from_config(cfg))
    member = lambda tree, i: jax.tree.map(lambda leaf: leaf[i], tree)  # noqa: E731
    # vmapped and unbatched initialisations may differ in the last bit
    assert tree_max_abs_diff(member(final.senders, 1), initial.senders) < 1e-6
    assert tree_max_abs_diff(member(final.receivers, 1), initial.receivers) < 1e-6
    assert tree_max_abs_diff(member(final.senders, 0), member(state.senders, 0)) < 1e-5  # as in the population
    assert tree_max_abs_diff(member(final.senders, 0), initial.senders) > 1e-3


# -- messages --------------------------------------------------------------------------------------


class Untrained(NamedTuple):
    cfg: lab.Config
    sender: object  # lab.core.agents.Sender
    objects: jax.Array  # [512, K]
    messages: dict  # how -> lab.core.agents.Message for `objects`


@pytest.fixture(scope="module")
def untrained(short) -> Untrained:
    """A freshly initialised sender (its messages end at random positions), 512 targets and its messages."""
    cfg, trainer, _, _, _ = short
    sender = trainer.agents.sender(trainer.agents.init_sender(jax.random.key(7)))
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
    np.testing.assert_array_equal(np.asarray(games.messages.alive(message.symbols)), np.asarray(message.alive, bool))
    np.testing.assert_array_equal(np.asarray(games.message_length(message.symbols)), np.minimum(ends + 1, max_len))
    np.testing.assert_array_equal(np.asarray(games.truncate_at_eos(message.symbols)), symbols)
    if how != "greedy":  # sampled messages exercise the convention: early ends, and padding that replaced symbols
        assert np.any(ends < max_len - 1)
        raw = np.asarray(jnp.argmax(message.one_hot, -1))
        assert np.any(raw[after] != 0), "nothing to pad: the test would pass vacuously"
        np.testing.assert_array_equal(symbols[~after], raw[~after])


def test_the_evaluation_speaks_both_languages_in_one_unroll_as_it_would_in_two(untrained):
    """greedy_and_sample_each: the greedy messages, and each row's draw from its own key, as the separate calls give;
    a sampled row does not depend on the batch (its first 100 rows alone draw the same)."""
    _, sender, objects, messages = untrained
    key = jax.random.key(3)
    greedy, sampled = sender.greedy_and_sample_each(objects, key)
    np.testing.assert_array_equal(greedy.symbols, messages["greedy"].symbols)
    np.testing.assert_allclose(greedy.log_prob, messages["greedy"].log_prob, rtol=1e-6, atol=1e-6)
    alone = sender.sample_each(objects[:100], key)
    np.testing.assert_array_equal(sampled.symbols[:100], alone.symbols)
    np.testing.assert_allclose(sampled.log_prob[:100], alone.log_prob, rtol=1e-6, atol=1e-6)
    assert np.mean(np.asarray(sampled.symbols != greedy.symbols)) > 0.1  # sampling, not the greedy rows twice
    # each row's symbols are drawn from pi(.|x) with the key fold_in(key, row): the same with a Python loop
    row = 5
    keys = jax.random.split(jax.random.fold_in(key, row), sender.max_len)
    forced = make_message(*sender.decode(objects[row:row + 1], lambda log_p, k: jax.nn.one_hot(
        jax.random.categorical(k, log_p[0])[None], sender.vocab_size), keys))
    np.testing.assert_array_equal(forced.symbols[0], sampled.symbols[row])


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
