"""Distributionally robust objectives: per-example weights (mean 1) from per-example losses; the `objective` section.

An objective (lab.core.components.Objective) turns the losses l_i = -log rho(x_i|m_i) of a batch
of n games into weights w_i with mean 1; the trainer multiplies the receiver's loss and the
sender's REINFORCE term by them alike, so the weighted game loss is mean_i w_i l_i
(../shared/science/algorithms.md §A):

    ERM         w_i = 1
    Group DRO   q_g <- q_g exp(eta L_g) / Z,  w_i = q_{g_i} / (n_{g_i} / n)          Sagawa et al. 2020 (arXiv 1911.08731)
    CVaR        w_i = 1/alpha on the alpha n largest losses (a fraction on the next)  Rockafellar & Uryasev 2000
    KL-DRO      w = n softmax(l / tau)                                               the KL-penalised q* (Hu et al. 2018)
    RP-DRO      w = n softmax(f_psi(x)), psi ascending mean(w l) - tau mean(w log w)  Michel et al. 2022 (arXiv 2204.06340)

L_g is the mean loss of group g in the batch (games.groups). Every weight rule is a pure function
on arrays (`cvar_weights`, `kl_dro_weights`, `group_dro_update` / `group_dro_weights`,
`batch_ratios`); the objectives wrap them with their state. Their continuous knobs (eta, alpha,
tau, adversary_lr) arrive as `hp["objective"]` arrays, so runs that differ in them share one
compiled call.

    >>> import jax.numpy as jnp
    >>> cvar_weights(jnp.array([0.1, 3.0, 0.2, 2.0]), 0.5).tolist()
    [0.0, 2.0, 0.0, 2.0]
    >>> float(kl_dro_weights(jnp.array([1.0, 1.0]), 0.1).mean())
    1.0

RP-DRO's adversary f_psi is an MLP over what the sender sees of the target, the game's features
(one-hot attributes `[K*V]` for an object) `-> H -> 1`, the sender's own input layer (so it is "the same architecture" as the encoder of the agent it
reweights) followed by a zero-initialised head: every ratio starts at 1. Its log-ratios are
renormalised within each minibatch to mean 1 (the official code's `--renorm-ratios`), and it
takes one Adam step per training step on the same batch as the agents (simultaneous updates).
In a population every pair's batch is its own minibatch. Minmax model selection over saved
(model, adversary) pairs is `minmax_select` here and lab.experiment.selection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import optax

from games.fields import ConfigError, doc
from lab.core.components import Objective, erm

OBJECTIVES = ("erm", "group_dro", "cvar", "kl_dro", "rp_dro")
MAX_KL = math.log(10.0)  # minmax selection rejects adversaries further than this from the data (Michel et al. 2022)


@dataclass(frozen=True)
class ObjectiveConfig:
    kind: str = doc("how per-example losses become weights on both agents' losses: erm (all 1); group_dro (exponentiated-"
                    "gradient weights over game.groups); cvar (the alpha fraction of highest losses); kl_dro (n softmax(loss "
                    "/ tau)); rp_dro (a ratio adversary network with KL penalty tau)", "erm", choices=OBJECTIVES)
    eta: float = doc("group_dro: step size of the exponentiated-gradient ascent on the group weights (Sagawa et al.'s "
                     "code: 0.01)", 0.01, low=0.0, low_open=True, continuous=True)
    alpha: float = doc("cvar: fraction of each batch, the highest losses, that carries the weight (1: ERM; the papers: "
                       "0.1, 0.2)", 0.2, low=0.0, high=1.0, low_open=True, continuous=True)
    tau: float = doc("kl_dro: softmax temperature in nats (small: weight on the worst examples; large: ERM); rp_dro: "
                     "weight of the adversary's KL penalty (Michel et al. sweep 0.001, 0.01, 0.1, 1)", 0.1, low=0.0,
                     low_open=True, continuous=True)
    adversary_lr: float = doc("rp_dro: the adversary's Adam learning rate (the paper shares the model's: keep it equal "
                              "to train.lr)", 3e-3, low=0.0, low_open=True, continuous=True)
    adversary_hidden: int = doc("rp_dro: hidden units of the adversary MLP over the one-hot attributes; 0 means "
                                "agents.hidden_size, the size of the sender's input layer", 0, low=0)

    def validate(self, config) -> None:
        if self.kind == "group_dro" and config.game.groups == "none":
            raise ConfigError("objective.kind='group_dro' needs groups: set game.groups to attribute, frequency or given "
                              "(make_trainer(config, groups=...))")
        if self.kind in ("cvar", "kl_dro", "rp_dro") and config.train.batch_size < 2:
            raise ConfigError(f"objective.kind={self.kind!r} reweights within a batch: needs train.batch_size >= 2, "
                              f"got {config.train.batch_size}")


# -- the weight rules, pure functions on arrays -----------------------------------------------------------


def cvar_weights(losses: jax.Array, alpha) -> jax.Array:
    """`[..., n]` mean-1 weights whose weighted mean loss is CVaR_alpha, the mean of the worst alpha fraction.

    Weight 1/alpha on the floor(alpha n) largest losses, the remaining mass on the next one:
    w_(r) = clip(alpha n - r, 0, 1) / alpha for the r-th largest loss (r = 0, 1, ...).
    """
    n = losses.shape[-1]
    rank = jnp.argsort(jnp.argsort(-losses, axis=-1), axis=-1)  # 0: the largest loss
    return jnp.clip(alpha * n - rank, 0.0, 1.0) / alpha


def kl_dro_weights(losses: jax.Array, tau) -> jax.Array:
    """`[..., n]` n softmax(l / tau): the worst case q* = argmax_q E_q[l] - tau KL(q || uniform), as mean-1 weights."""
    return losses.shape[-1] * jax.nn.softmax(losses / tau, axis=-1)


def group_losses(losses: jax.Array, groups: jax.Array, n_groups: int) -> tuple[jax.Array, jax.Array]:
    """(L_g `[G]` mean loss of each group in the batch, n_g `[G]` its count); an absent group has L_g = 0."""
    in_group = jax.nn.one_hot(groups, n_groups, dtype=losses.dtype)  # [n, G]
    counts = jnp.sum(in_group, axis=0)
    return (in_group.T @ losses) / jnp.maximum(counts, 1.0), counts


def group_dro_update(q: jax.Array, group_loss: jax.Array, eta) -> jax.Array:
    """One exponentiated-gradient ascent step on the simplex: q_g <- q_g exp(eta L_g) / sum_h q_h exp(eta L_h)."""
    return jax.nn.softmax(jnp.log(q) + eta * group_loss)


def group_dro_weights(q: jax.Array, groups: jax.Array, counts: jax.Array) -> jax.Array:
    """`[n]` w_i = q_{g_i} / (n_{g_i} / n): mean_i w_i l_i = sum_g q_g L_g (renormalised over the groups present)."""
    n = groups.shape[0]
    present_mass = jnp.sum(jnp.where(counts > 0, q, 0.0))
    return n * q[groups] / (jnp.maximum(counts[groups], 1.0) * present_mass)


def batch_ratios(log_ratios: jax.Array) -> jax.Array:
    """`[..., n]` r~_i = n exp(f_i) / sum_j exp(f_j): log-ratios renormalised within the batch to mean 1 (Eq. 8)."""
    return log_ratios.shape[-1] * jax.nn.softmax(log_ratios, axis=-1)


def kl_from_uniform(weights: jax.Array) -> jax.Array:
    """`[...]` mean_i w_i log w_i = KL(q || p) of the reweighting q_i = w_i p_i, for mean-1 weights `[..., n]`."""
    return jnp.mean(jnp.where(weights > 0, weights * jnp.log(jnp.where(weights > 0, weights, 1.0)), 0.0), axis=-1)


def weight_summary(weights: jax.Array) -> dict[str, jax.Array]:
    """weight_max (the largest weight) and weight_kl (nats from uniform) of `[..., n]` weights, averaged over batches."""
    return {"weight_max": jnp.mean(jnp.max(weights, axis=-1)), "weight_kl": jnp.mean(kl_from_uniform(weights))}


# -- the RP-DRO adversary ---------------------------------------------------------------------------


def adversary_init(key: jax.Array, n_inputs: int, hidden: int) -> dict:
    """An MLP `[F] -> hidden -> 1`: the input layer initialised like nnx.Linear's (LeCun normal), the head at 0."""
    return {"w_in": jax.nn.initializers.lecun_normal()(key, (n_inputs, hidden)), "b_in": jnp.zeros(hidden),
            "w_out": jnp.zeros(hidden)}


def adversary_log_ratios(params: dict, features: jax.Array) -> jax.Array:
    """f_psi(x) `[...]`, the unnormalised log-ratio of each object, seen as the agents see it: `features [..., F]`."""
    return jnp.tanh(features @ params["w_in"] + params["b_in"]) @ params["w_out"]


def adversary_loss(params: dict, features: jax.Array, losses: jax.Array, tau) -> jax.Array:
    """-(mean r~ l - tau mean r~ log r~) over minibatches `[..., n]` (features `[..., n, F]`): what the adversary descends."""
    r = batch_ratios(adversary_log_ratios(params, features))
    return -jnp.mean(jnp.mean(r * losses, axis=-1) - tau * kl_from_uniform(r))


def adversary_step(params: dict, opt_state, features: jax.Array, losses: jax.Array, tau, lr):
    """One Adam step of the adversary on a batch: `(params, opt_state)`."""
    grads = jax.grad(adversary_loss)(params, features, jax.lax.stop_gradient(losses), tau)
    updates, opt_state = optax.scale_by_adam().update(grads, opt_state)
    return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state


# -- the objectives ---------------------------------------------------------------------------------


def _per_pair(stats, n_pairs: int):
    """(ids, groups, losses) of a step's flattened Stats as `[pairs, B]`: each pair's batch is its own minibatch."""
    return stats.ids.reshape(n_pairs, -1), stats.groups.reshape(n_pairs, -1), stats.loss.reshape(n_pairs, -1)


def _summary_state() -> dict:
    return {"weight_max": jnp.ones(()), "weight_kl": jnp.zeros(())}


def _stateless(rule, n_pairs: int) -> Objective:
    """An objective whose weights are a function of the batch's losses alone; its state keeps the last summary."""

    def update(state, stats, hp):
        return weight_summary(rule(_per_pair(stats, n_pairs)[2], hp))

    return Objective(init=lambda key: _summary_state(), weights=lambda state, loss, groups, ids, hp: rule(loss, hp),
                     update=update, summary=lambda state, hp: state)


def cvar(n_pairs: int = 1) -> Objective:
    """CVaR at level `hp["alpha"]`: the mean loss of the worst alpha fraction of each batch."""
    return _stateless(lambda losses, hp: cvar_weights(losses, hp["alpha"]), n_pairs)


def kl_dro(n_pairs: int = 1) -> Objective:
    """KL-regularised non-parametric DRO at temperature `hp["tau"]`: w = n softmax(l / tau)."""
    return _stateless(lambda losses, hp: kl_dro_weights(losses, hp["tau"]), n_pairs)


def group_dro(n_groups: int) -> Objective:
    """Group DRO with step size `hp["eta"]`; state: the group weights q `[G]` (start uniform) and the last summary.

    As in Sagawa et al.'s code, q takes its step on the batch's group losses before they are
    weighted. In a population each pair weighs its batch with q stepped on its own losses, and
    the state's q steps on the group losses of all pairs together.
    """

    def weights(state, loss, groups, ids, hp):
        group_loss, counts = group_losses(loss, groups, n_groups)
        return group_dro_weights(group_dro_update(state["q"], group_loss, hp["eta"]), groups, counts)

    def update(state, stats, hp):
        group_loss, counts = group_losses(stats.loss, stats.groups, n_groups)
        q = group_dro_update(state["q"], group_loss, hp["eta"])
        return {"q": q, **weight_summary(group_dro_weights(q, stats.groups, counts))}

    def summary(state, hp):
        return {**{f"group_weight_{g}": state["q"][g] for g in range(n_groups)},
                "weight_max": state["weight_max"], "weight_kl": state["weight_kl"]}

    return Objective(init=lambda key: {"q": jnp.full(n_groups, 1.0 / n_groups), **_summary_state()},
                     weights=weights, update=update, summary=summary)


def rp_dro(train_features, hidden: int, n_pairs: int = 1) -> Objective:
    """RP-DRO: ratios from an adversary over the train objects, seen as `train_features [n_train, F]` (the game's `features`:
    one-hot attributes for objects), KL penalty `hp["tau"]`, Adam at `hp["adversary_lr"]`.

    State: the adversary's parameters and Adam state, and the last batch's summary (weight_max,
    weight_kl = the adversary's KL from the data, adversary_gain = mean(r~ l) - mean(l), how much
    its reweighting raised the loss).
    """
    features = jnp.asarray(train_features, jnp.float32)  # [n_train, F]; `ids` index them

    def init(key):
        params = adversary_init(key, features.shape[1], hidden)
        return {"params": params, "adam": optax.scale_by_adam().init(params), **_summary_state(),
                "adversary_gain": jnp.zeros(())}

    def weights(state, loss, groups, ids, hp):
        return batch_ratios(adversary_log_ratios(state["params"], features[ids]))

    def update(state, stats, hp):
        ids, _, losses = _per_pair(stats, n_pairs)
        r = batch_ratios(adversary_log_ratios(state["params"], features[ids]))  # the weights this step used
        params, adam = adversary_step(state["params"], state["adam"], features[ids], losses, hp["tau"], hp["adversary_lr"])
        gain = jnp.mean(jnp.mean(r * losses, axis=-1) - jnp.mean(losses, axis=-1))
        return {"params": params, "adam": adam, **weight_summary(r), "adversary_gain": gain}

    def summary(state, hp):
        return {k: state[k] for k in ("weight_max", "weight_kl", "adversary_gain")}

    return Objective(init=init, weights=weights, update=update, summary=summary)


def objective(spec, n_groups: int = 1) -> Objective:
    """The objective `spec.config.objective` describes, for a world with `n_groups` groups."""
    c = spec.config
    o, n_pairs = c.objective, c.population.n_senders
    if o.kind == "erm":
        return erm()
    if o.kind == "group_dro":
        if n_groups < 2:
            raise ConfigError("objective.kind='group_dro': the groups given put every object in one group; Group DRO "
                              "needs at least two")
        return group_dro(n_groups)
    if o.kind == "cvar":
        return cvar(n_pairs)
    if o.kind == "kl_dro":
        return kl_dro(n_pairs)
    return rp_dro(spec.game.features(jnp.asarray(spec.world.train_objects)), o.adversary_hidden or c.agents.hidden_size, n_pairs)


# -- minmax model selection ---------------------------------------------------------------------------


def validation_ratios(log_ratios: jax.Array, probs: jax.Array) -> jax.Array:
    """`[A, N]` r_a(x) = exp(f_a(x)) / sum_x' p(x') exp(f_a(x')): each adversary renormalised over the whole validation set."""
    log_probs = jnp.log(probs)
    return jnp.exp(log_ratios - jax.nn.logsumexp(log_ratios + log_probs, axis=-1, keepdims=True))


def minmax_select(errors: jax.Array, log_ratios: jax.Array, probs: jax.Array, max_kl: float = MAX_KL):
    """Minmax model selection (Michel et al. 2022, Eq. 10): `(best model, robust scores [M], kept adversaries [A])`.

    errors `[M, N]`: the 0-1 error of each saved model on each validation object; log_ratios
    `[A, N]`: each saved adversary's f(x) (A may be 0); probs `[N]`: the validation distribution p.
    An adversary is kept when its KL from p, sum_x p r log r, is at most `max_kl`; the pool is the
    kept ones and the uniform weighting r = 1, always. A model's robust score is its largest
    reweighted error max_a sum_x p(x) r_a(x) err(x); the best model has the smallest.
    """
    errors, probs = jnp.asarray(errors, jnp.float32), jnp.asarray(probs, jnp.float32)
    log_ratios = jnp.asarray(log_ratios, jnp.float32).reshape(-1, errors.shape[1])
    r = validation_ratios(log_ratios, probs)  # [A, N]
    kl = jnp.sum(probs * r * jnp.log(jnp.maximum(r, 1e-30)), axis=-1)
    kept = kl <= max_kl
    pool = jnp.concatenate([jnp.ones((1, errors.shape[1])), r], axis=0)  # [1 + A, N], uniform first
    scores = (pool * probs) @ errors.T  # [1 + A, M]
    robust = jnp.max(jnp.where(jnp.concatenate([jnp.ones(1, bool), kept])[:, None], scores, -jnp.inf), axis=0)
    return int(jnp.argmin(robust)), robust, kept
