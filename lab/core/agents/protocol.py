"""The agent protocol: what the lab asks of a sender and a receiver, whatever their architecture.

Training, evaluation, the loss decomposition, probes, merging judges and play call only these
methods, so any architecture that implements them works everywhere (GRU, LSTM: lab.core.agents.rnn;
transformer: lab.core.agents.transformer). Objects are a game's referents `[B, ...]` (attribute-value
objects `[B, K]` integers; feature vectors `[B, d]`), seen through the game's `features`; messages follow the
conventions of games.messages (`[B, max_len]`, symbol 0 is EOS, padding after it).

Sender (speaker), with `vocab_size` and `max_len`:

    sample(objects, key)              Message drawn from pi(.|x) (training)
    sample_each(objects, key)         Message drawn from pi(.|x), row b with the key fold_in(key, b): a row's
                                      message does not depend on the rest of the batch (evaluation, analysis)
    greedy(objects)                   Message of the most likely symbol at each position (the language it speaks)
    gumbel(objects, key, temperature) straight-through Gumbel-softmax Message (train.mode=gumbel)
    symbol_log_probs(objects, messages)   [B, T, vocab] log pi(s | x, m_<t), the messages teacher-forced
    log_prob(objects, messages)       [B] log pi(m|x), summed up to and including the first EOS

`messages` given to the last two may be prefixes, `[B, T]` with T <= max_len: then they score the
first T positions (the staged normaliser of lab.analysis.decomposition scores prefixes).

Optional fast hook: `message_log_probs(objects, messages, max_pairs, objects_mask)`, the matrix
A_ij = log pi(m_i|x_j) of every message under every object, the loss decomposition's cost
(lab.core.agents.forcing). A sender without it is scored by generic teacher forcing through
`log_prob`; the recurrent senders have one (shared prefixes, blocks that stay in cache).

Receiver (listener):

    read(one_hot, candidates=None, shown=None)   the game's output, read where each message ends:
                                      reconstruction [B, K, V] log rho(x_k = v | m); given candidates
                                      [B, C, K] (discrimination), [B, C] log rho(c | m) over the `shown` ones

`one_hot: [B, T, vocab]` is what the receiver reads: hard one-hots, or straight-through soft ones
whose gradient must reach the sender (gumbel mode). `unroll` is a hint every method takes: the
training step's hot path may unroll loops over the positions, the evaluation keeps them rolled
(compile time counts more there).

`Sender` and `Receiver` below implement most of the protocol from one method each, the part
that is an architecture: `decode` (the decoding loop, fed each chosen symbol) and `readings` (a
reading of m_<=t after every position t). The sampling rules, teacher forcing by `decode`, and
the game's output heads are written once here.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from games.messages import alive, end_weights

Choose = Callable[[jax.Array, object], jax.Array]  # (log_p [B, vocab], x_t) -> one_hot [B, vocab]
Features = Callable[[jax.Array], jax.Array]  # objects [..., K] -> what an agent sees of them [..., n_features]


class Message(NamedTuple):
    symbols: jax.Array  # [B, T] int, 0 after the first EOS
    one_hot: jax.Array  # [B, T, vocab] what the receiver reads (straight-through soft in gumbel mode)
    log_prob: jax.Array  # [B] log pi(m|x), summed up to and including the first EOS
    entropy: jax.Array  # [B] mean per-position entropy over the same positions
    alive: jax.Array  # [B, T] 1 up to and including the first EOS


def make_message(log_p: jax.Array, one_hot: jax.Array) -> Message:
    """The message of per-position log-probabilities `[B, T, vocab]` and chosen one-hots: padding after the first EOS."""
    eos = one_hot[..., 0]  # [B, T]
    ended_before = jnp.concatenate([jnp.zeros_like(eos[:, :1]), jnp.cumsum(jax.lax.stop_gradient(eos), axis=1)[:, :-1]], axis=1)
    live = (ended_before < 0.5).astype(log_p.dtype)
    symbols = jnp.argmax(one_hot, axis=-1) * live.astype(jnp.int32)
    token_log_p = jnp.sum(log_p * jax.lax.stop_gradient(one_hot), axis=-1)
    token_entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    return Message(symbols=symbols, one_hot=one_hot, log_prob=jnp.sum(token_log_p * live, axis=1),
                   entropy=jnp.sum(token_entropy * live, axis=1) / jnp.sum(live, axis=1), alive=live)


def draw(vocab_size: int) -> Choose:
    """The sampling rule: a symbol drawn from pi(.|x, m_<t) with the position's key."""
    return lambda log_p, key: jax.nn.one_hot(jax.random.categorical(key, log_p), vocab_size)


class ObjectView(NamedTuple):
    """How the agents see the objects of a game: what an architecture is built for besides its config section."""

    features: Features  # objects -> [..., n_features]
    n_features: int
    n_attributes: int  # a reconstruction receiver's heads: K softmaxes over V values (n_features = K*V)
    n_values: int

    @classmethod
    def of(cls, game) -> "ObjectView":
        """How the agents of `game` (games.lewis.LewisGame: its `features` of a referent) see its referents."""
        return cls(game.features, game.n_features, game.n_attributes, game.n_values)


class Sender:
    """The sender protocol, implemented from `decode` (an architecture subclasses this and an `nnx.Module`)."""

    vocab_size: int
    max_len: int

    def decode(self, objects: jax.Array, choose: Choose, xs, unroll: bool = True) -> tuple[jax.Array, jax.Array]:
        """Speak: at each position t, `log_p_t = log pi(. | x, one_hot_<t)` `[B, vocab]`, then `one_hot_t = choose(log_p_t,
        xs[t])`, fed back as the next input. Returns `(log_p, one_hot)`, each `[B, T, vocab]`; T = the length of `xs`'
        leaves (`max_len` when `xs` is None)."""
        raise NotImplementedError

    def _speak(self, objects: jax.Array, choose: Choose, xs, unroll: bool = True) -> Message:
        return make_message(*self.decode(objects, choose, xs, unroll))

    def sample(self, objects: jax.Array, key: jax.Array) -> Message:
        """Messages drawn from pi(.|x): REINFORCE and the loss decomposition."""
        return self._speak(objects, draw(self.vocab_size), jax.random.split(key, self.max_len))

    def sample_each(self, objects: jax.Array, key: jax.Array) -> Message:
        """Messages drawn from pi(.|x), row b from its own key `fold_in(key, b)`: a row's message does not
        depend on the rest of the batch (its size, the padding of an evaluation split). Evaluation and analysis."""
        draw = jax.vmap(jax.random.categorical)
        return self._speak(objects, lambda log_p, k: jax.nn.one_hot(draw(k, log_p), self.vocab_size),
                           self._row_keys(key, objects.shape[0]), unroll=False)

    def greedy_and_sample_each(self, objects: jax.Array, key: jax.Array) -> tuple[Message, Message]:
        """`(greedy(objects), sample_each(objects, key))` from one decoding over both sets of rows (the evaluation's
        two languages: one decoder to compile, not two)."""
        n = objects.shape[0]
        draw = jax.vmap(jax.random.categorical)

        def choose(log_p, k):  # the greedy rows first, then the sampled ones
            return jax.nn.one_hot(jnp.concatenate([jnp.argmax(log_p[:n], -1), draw(k, log_p[n:])]), self.vocab_size)

        both = self._speak(jnp.concatenate([objects, objects]), choose, self._row_keys(key, n), unroll=False)
        return jax.tree.map(lambda leaf: leaf[:n], both), jax.tree.map(lambda leaf: leaf[n:], both)

    def _row_keys(self, key: jax.Array, n: int) -> jax.Array:
        """`[T, n]`: position t's key of row b, from the row's own key `fold_in(key, b)` (sample_each)."""
        rows = jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(n))
        return jax.vmap(lambda k: jax.random.split(k, self.max_len))(rows).swapaxes(0, 1)

    def greedy(self, objects: jax.Array) -> Message:
        """The most likely symbol at each position: the language the sender 'speaks'."""
        return self._speak(objects, lambda log_p, _: jax.nn.one_hot(jnp.argmax(log_p, -1), self.vocab_size), None, unroll=False)

    def gumbel(self, objects: jax.Array, key: jax.Array, temperature: jax.Array) -> Message:
        """Straight-through Gumbel-softmax: hard one-hots forward, relaxed gradients backward."""
        keys = jax.random.split(key, self.max_len)

        def choose(log_p, k):
            soft = jax.nn.softmax((log_p + jax.random.gumbel(k, log_p.shape)) / temperature)
            hard = jax.nn.one_hot(jnp.argmax(soft, -1), self.vocab_size)
            return soft + jax.lax.stop_gradient(hard - soft)

        return self._speak(objects, choose, keys)

    def symbol_log_probs(self, objects: jax.Array, messages: jax.Array) -> jax.Array:
        """log pi(s | x, m_<t) `[B, T, vocab]` for `messages: [B, T]` (teacher forcing: `decode` fed the given symbols)."""
        forced = jax.nn.one_hot(messages.swapaxes(0, 1), self.vocab_size)  # [T, B, vocab]
        return self.decode(objects, lambda log_p, x_t: x_t, forced)[0]

    def log_prob(self, objects: jax.Array, messages: jax.Array) -> jax.Array:
        """log pi(m|x) `[B]` of given messages `[B, T]`, summed up to and including the first EOS."""
        picked = jnp.take_along_axis(self.symbol_log_probs(objects, messages), messages[..., None], axis=-1)[..., 0]
        return jnp.sum(jnp.where(alive(messages), picked, 0.0), axis=-1)


class Receiver:
    """The receiver protocol, implemented from `readings`, `features` and two output heads an architecture creates:
    `head` (width -> n_features) and `candidate_encoder` (n_features -> n_features)."""

    n_attributes: int
    n_values: int

    def readings(self, one_hot: jax.Array, unroll: bool = True) -> jax.Array:
        """`[B, T, width]`: the reading of m_<=t after each position t of messages `one_hot: [B, T, vocab]`."""
        raise NotImplementedError

    def reconstruct(self, one_hot: jax.Array, unroll: bool = True) -> jax.Array:
        """log rho(x_k = v | m_{<=t}) `[B, T, K, V]`: a reading after every position."""
        logits = self.head(self.readings(one_hot, unroll))
        return jax.nn.log_softmax(logits.reshape(*logits.shape[:-1], self.n_attributes, self.n_values))

    def discriminate(self, one_hot: jax.Array, candidates: jax.Array, shown: jax.Array | None = None,
                     unroll: bool = True) -> jax.Array:
        """log rho(candidate c | m_{<=t}) `[B, T, C]` for `candidates: [B, C, ...]`, over the `shown [B, C]` ones."""
        message = self.head(self.readings(one_hot, unroll))  # [B, T, F]: the message and candidate embeddings share a space
        scores = jnp.einsum("btd,bcd->btc", message, self.candidate_encoder(self.features(candidates)))
        if shown is not None:
            scores = jnp.where(shown[:, None, :], scores, -jnp.inf)
        return jax.nn.log_softmax(scores)

    def read(self, one_hot: jax.Array, candidates: jax.Array | None = None, shown: jax.Array | None = None,
             unroll: bool = True) -> jax.Array:
        """The reading where each message ends: `[B, K, V]` (reconstruction) or `[B, C]` (given `candidates`).

        Weighted by `end_weights` of the EOS indicators, so a straight-through message carries the
        gradient of where it ends; with hard messages it is the reading at the end position.
        """
        ends = end_weights(one_hot[..., 0])  # [B, T]
        if candidates is None:
            return jnp.einsum("bt,btkv->bkv", ends, self.reconstruct(one_hot, unroll))
        log_p = self.discriminate(one_hot, candidates, shown, unroll)
        if shown is None:
            return jnp.einsum("bt,btc->bc", ends, log_p)
        mixed = jnp.einsum("bt,btc->bc", ends, jnp.where(shown[:, None, :], log_p, 0.0))  # 0 * -inf would be nan
        return jnp.where(shown, mixed, -jnp.inf)
