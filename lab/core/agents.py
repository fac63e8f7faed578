"""Sender and receiver agents (Flax NNX), used functionally by the trainer; the `agents` config section.

Sender: object -> one-hot `[K*V]` -> linear -> initial hidden state of a recurrent decoder that
emits `max_len` symbols (symbol 0 is EOS; after the first EOS the message is padding).
Receiver: reads the message with a recurrent encoder and, at every position, outputs K attribute
distributions (reconstruction) or an embedding scored against candidates (discrimination);
`read_at_end` reads it where the message ends.

The recurrences over the message positions are unrolled by default (`unroll`): XLA's CPU code for
a `lax.scan` copies each step's residuals in and out of its loop, and the unrolled training step of
the default game ran 25-30% faster (one seed 25.7k -> 32.0-33.8k games/s, 2-core AMD EPYC,
2026-12-06) for about 0.6 s more compile. The evaluation's readings (`greedy`,
`greedy_and_sample_each`, `unroll=False`) stay a loop: they run once per `eval_every` steps, where
compile time counts more.

The recurrent cells fuse their gates into one matrix, and a symbol enters a cell through a table
`embedding @ W_input` `[vocab, gates*H]`: a symbol (hard or Gumbel-soft one-hot) times that table
is the same as embedding then projecting, with fewer flops in the hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from games.fields import doc
from games.messages import end_weights

CELLS = ("gru", "lstm")


@dataclass(frozen=True)
class AgentsConfig:
    cell: str = doc("recurrent cell of sender and receiver", "gru", choices=CELLS)
    hidden_size: int = doc("hidden units of both recurrent cells", 128, low=1)
    embedding_size: int = doc("symbol embedding size", 32, low=1)
    vocab_size: int = doc("symbols, EOS (symbol 0) included", 10, low=2)
    max_len: int = doc("message positions, the EOS position included", 5, low=1, high=100,
                       why="the training step unrolls both agents over every position: its compile time grows with "
                           "max_len, about a second a position on 2 CPU cores")


class RNNCell(nnx.Module):
    """GRU or LSTM with fused gates; `step` takes the already projected input `[B, gates*H]`."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, *, rngs: nnx.Rngs):
        self.kind = kind
        self.hidden_size = hidden_size
        gates = {"gru": 3, "lstm": 4}[kind]
        # PyTorch's recurrent init, U(-1/sqrt(H), 1/sqrt(H)). Not orthogonal: its QR, batched under
        # vmap over seeds, deadlocks jaxlib 0.10's CPU LAPACK thread pool on 2 cores.
        init = nnx.initializers.uniform(2.0 / hidden_size**0.5)
        self.w_input = nnx.Param(init(rngs.params(), (input_size, gates * hidden_size)) - 1.0 / hidden_size**0.5)
        self.w_hidden = nnx.Param(init(rngs.params(), (hidden_size, gates * hidden_size)) - 1.0 / hidden_size**0.5)
        bias = jnp.zeros(gates * hidden_size)
        if kind == "lstm":  # forget-gate bias 1: remember by default
            bias = bias.at[hidden_size : 2 * hidden_size].set(1.0)
        self.bias = nnx.Param(bias)

    def initial_carry(self, h0: jax.Array):
        return h0 if self.kind == "gru" else (h0, jnp.zeros_like(h0))

    def hidden(self, carry) -> jax.Array:
        return carry if self.kind == "gru" else carry[0]

    def input_table(self, embedding: jax.Array) -> jax.Array:
        """`[symbols, gates*H]`: each embedded symbol's input projection, bias included."""
        return embedding @ self.w_input[...] + self.bias[...]

    def hidden_projection(self, carry) -> jax.Array:
        """`[..., gates*H]`: the hidden state's share of the gates, `h @ W_hidden`."""
        return self.hidden(carry) @ self.w_hidden[...]

    def step(self, carry, x_proj: jax.Array, h_proj: jax.Array | None = None):
        """The next carry from the projected input `[..., gates*H]` (and `h_proj`, the carry's `hidden_projection`,
        when it is already known: children of one prefix share it, lab.core.ideal)."""
        H = self.hidden_size
        gh = self.hidden_projection(carry) if h_proj is None else h_proj  # [..., gates*H]
        if self.kind == "gru":
            h = carry
            r = jax.nn.sigmoid(x_proj[..., :H] + gh[..., :H])
            z = jax.nn.sigmoid(x_proj[..., H : 2 * H] + gh[..., H : 2 * H])
            n = jnp.tanh(x_proj[..., 2 * H :] + r * gh[..., 2 * H :])
            return (1.0 - z) * n + z * h
        h, c = carry
        g = x_proj + gh  # [..., 4H]: input, forget, cell, output
        i, f, u, o = (g[..., k * H : (k + 1) * H] for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(u)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


class Message(NamedTuple):
    symbols: jax.Array  # [B, T] int, 0 after the first EOS
    one_hot: jax.Array  # [B, T, vocab] what the receiver reads (straight-through soft in gumbel mode)
    log_prob: jax.Array  # [B] log pi(m|x), summed up to and including the first EOS
    entropy: jax.Array  # [B] mean per-position entropy over the same positions
    alive: jax.Array  # [B, T] 1 up to and including the first EOS


class Sender(nnx.Module):
    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, max_len: int, cell: str,
                 hidden_size: int, embedding_size: int, *, rngs: nnx.Rngs):
        self.n_attributes, self.n_values = n_attributes, n_values
        self.vocab_size, self.max_len = vocab_size, max_len
        self.encoder = nnx.Linear(n_attributes * n_values, hidden_size, rngs=rngs)
        self.embedding = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (vocab_size + 1, embedding_size)))  # +1: start symbol
        self.cell = RNNCell(cell, embedding_size, hidden_size, rngs=rngs)
        self.head = nnx.Linear(hidden_size, vocab_size, rngs=rngs)

    # -- the decoder, one step at a time (teacher forcing in lab.analysis uses these) ---------------
    def input_table(self) -> jax.Array:
        """`[vocab + 1, gates*H]`: each symbol's input projection, the start symbol (index vocab) last."""
        return self.cell.input_table(self.embedding[...])

    def start(self, objects: jax.Array):
        """The decoder's carry before the first symbol, for `objects: [B, K]`."""
        x = jax.nn.one_hot(objects, self.n_values).reshape(objects.shape[0], -1)
        return self.cell.initial_carry(self.encoder(x))

    def step(self, carry, x_proj: jax.Array, h_proj: jax.Array | None = None):
        """Consume one projected symbol `[B, gates*H]`: `(carry, log pi(next symbol) [B, vocab])` (`h_proj`: RNNCell.step)."""
        carry = self.cell.step(carry, x_proj, h_proj)
        return carry, jax.nn.log_softmax(self.head(self.cell.hidden(carry)))

    def _unroll(self, objects: jax.Array, choose, xs, unroll: bool = True) -> Message:
        """Run the decoder; `choose(log_p, x) -> one_hot [B, vocab]` picks each symbol (`unroll`: module doc)."""
        table = self.input_table()
        start = jnp.broadcast_to(table[-1], (objects.shape[0], table.shape[1]))

        def body(state, x_t):
            carry, x_proj = state
            carry, log_p = self.step(carry, x_proj)  # [B, vocab]
            one_hot = choose(log_p, x_t)
            return (carry, one_hot @ table[:-1]), (log_p, one_hot)

        _, (log_p, one_hot) = jax.lax.scan(body, (self.start(objects), start), xs, length=self.max_len, unroll=unroll)
        return make_message(log_p.swapaxes(0, 1), one_hot.swapaxes(0, 1))  # [B, T, vocab]

    def sample(self, objects: jax.Array, key: jax.Array) -> Message:
        """Messages drawn from pi(.|x): REINFORCE and the loss decomposition."""
        keys = jax.random.split(key, self.max_len)
        return self._unroll(objects, lambda log_p, k: jax.nn.one_hot(jax.random.categorical(k, log_p), self.vocab_size), keys)

    def sample_each(self, objects: jax.Array, key: jax.Array) -> Message:
        """Messages drawn from pi(.|x), row b from its own key `fold_in(key, b)`: a row's message does not
        depend on the rest of the batch (its size, the padding of an evaluation split). Evaluation and analysis."""
        draw = jax.vmap(jax.random.categorical)
        return self._unroll(objects, lambda log_p, k: jax.nn.one_hot(draw(k, log_p), self.vocab_size),
                            self._row_keys(key, objects.shape[0]), unroll=False)

    def greedy_and_sample_each(self, objects: jax.Array, key: jax.Array) -> tuple[Message, Message]:
        """`(greedy(objects), sample_each(objects, key))` from one unroll over both sets of rows (the evaluation's
        two languages: one decoder to compile, not two)."""
        n = objects.shape[0]
        draw = jax.vmap(jax.random.categorical)

        def choose(log_p, k):  # the greedy rows first, then the sampled ones
            return jax.nn.one_hot(jnp.concatenate([jnp.argmax(log_p[:n], -1), draw(k, log_p[n:])]), self.vocab_size)

        both = self._unroll(jnp.concatenate([objects, objects]), choose, self._row_keys(key, n), unroll=False)
        return jax.tree.map(lambda leaf: leaf[:n], both), jax.tree.map(lambda leaf: leaf[n:], both)

    def _row_keys(self, key: jax.Array, n: int) -> jax.Array:
        """`[T, n]`: position t's key of row b, from the row's own key `fold_in(key, b)` (sample_each)."""
        rows = jax.vmap(lambda b: jax.random.fold_in(key, b))(jnp.arange(n))
        return jax.vmap(lambda k: jax.random.split(k, self.max_len))(rows).swapaxes(0, 1)

    def greedy(self, objects: jax.Array) -> Message:
        """The most likely symbol at each position: the language the sender 'speaks'."""
        return self._unroll(objects, lambda log_p, _: jax.nn.one_hot(jnp.argmax(log_p, -1), self.vocab_size), None, unroll=False)

    def gumbel(self, objects: jax.Array, key: jax.Array, temperature: jax.Array) -> Message:
        """Straight-through Gumbel-softmax: hard one-hots forward, relaxed gradients backward."""
        keys = jax.random.split(key, self.max_len)

        def choose(log_p, k):
            soft = jax.nn.softmax((log_p + jax.random.gumbel(k, log_p.shape)) / temperature)
            hard = jax.nn.one_hot(jnp.argmax(soft, -1), self.vocab_size)
            return soft + jax.lax.stop_gradient(hard - soft)

        return self._unroll(objects, choose, keys)

    def log_prob(self, objects: jax.Array, messages: jax.Array) -> jax.Array:
        """log pi(m|x) `[B]` of given messages `[B, T]` (teacher forcing)."""
        forced = jax.nn.one_hot(messages.swapaxes(0, 1), self.vocab_size)  # [T, B, vocab]
        return self._unroll(objects, lambda log_p, x_t: x_t, forced).log_prob


def make_message(log_p: jax.Array, one_hot: jax.Array) -> Message:
    """The message of per-position log-probabilities `[B, T, vocab]` and chosen one-hots: padding after the first EOS."""
    eos = one_hot[..., 0]  # [B, T]
    ended_before = jnp.concatenate([jnp.zeros_like(eos[:, :1]), jnp.cumsum(jax.lax.stop_gradient(eos), axis=1)[:, :-1]], axis=1)
    alive = (ended_before < 0.5).astype(log_p.dtype)
    symbols = jnp.argmax(one_hot, axis=-1) * alive.astype(jnp.int32)
    token_log_p = jnp.sum(log_p * jax.lax.stop_gradient(one_hot), axis=-1)
    token_entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    return Message(symbols=symbols, one_hot=one_hot, log_prob=jnp.sum(token_log_p * alive, axis=1),
                   entropy=jnp.sum(token_entropy * alive, axis=1) / jnp.sum(alive, axis=1), alive=alive)


class Receiver(nnx.Module):
    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, cell: str, hidden_size: int,
                 embedding_size: int, *, rngs: nnx.Rngs):
        self.n_attributes, self.n_values = n_attributes, n_values
        self.embedding = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (vocab_size, embedding_size)))
        self.cell = RNNCell(cell, embedding_size, hidden_size, rngs=rngs)
        # reconstruction: K softmax heads; discrimination: the message and candidate embeddings share a space
        self.head = nnx.Linear(hidden_size, n_attributes * n_values, rngs=rngs)
        self.candidate_encoder = nnx.Linear(n_attributes * n_values, n_attributes * n_values, rngs=rngs)

    def read(self, one_hot: jax.Array, unroll: bool = True) -> jax.Array:
        """Hidden state after each position `[B, T, H]` of messages `one_hot: [B, T, vocab]` (`unroll`: module doc)."""
        table = self.cell.input_table(self.embedding[...])  # [vocab, gates*H]
        carry = self.cell.initial_carry(jnp.zeros((one_hot.shape[0], self.cell.hidden_size)))

        def body(carry, x_t):
            carry = self.cell.step(carry, x_t @ table)
            return carry, self.cell.hidden(carry)

        _, hidden = jax.lax.scan(body, carry, one_hot.swapaxes(0, 1), unroll=unroll)
        return hidden.swapaxes(0, 1)

    def reconstruct(self, one_hot: jax.Array, unroll: bool = True) -> jax.Array:
        """log rho(x_k = v | m_{<=t}) `[B, T, K, V]`: a reading after every position."""
        logits = self.head(self.read(one_hot, unroll))
        return jax.nn.log_softmax(logits.reshape(*logits.shape[:-1], self.n_attributes, self.n_values))

    def discriminate(self, one_hot: jax.Array, candidates: jax.Array, shown: jax.Array | None = None,
                     unroll: bool = True) -> jax.Array:
        """log rho(candidate c | m_{<=t}) `[B, T, C]` for `candidates: [B, C, K]`, over the `shown [B, C]` ones."""
        message = self.head(self.read(one_hot, unroll))  # [B, T, K*V]
        c = jax.nn.one_hot(candidates, self.n_values).reshape(*candidates.shape[:2], -1)
        scores = jnp.einsum("btd,bcd->btc", message, self.candidate_encoder(c))
        if shown is not None:
            scores = jnp.where(shown[:, None, :], scores, -jnp.inf)
        return jax.nn.log_softmax(scores)

    def read_at_end(self, one_hot: jax.Array, candidates: jax.Array | None = None, shown: jax.Array | None = None,
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


class Agents:
    """The static part of the agents (NNX graph definitions); parameters are pure pytrees.

    `sender(params)` / `receiver(params)` rebuild the modules from parameters; `init(key)` gives
    fresh `(sender_params, receiver_params)`.
    """

    def __init__(self, game_config, agents_config: AgentsConfig):
        g, a = game_config, agents_config
        self.config = a
        self.make_sender: Callable[[nnx.Rngs], Sender] = lambda rngs: Sender(
            g.n_attributes, g.n_values, a.vocab_size, a.max_len, a.cell, a.hidden_size, a.embedding_size, rngs=rngs)
        self.make_receiver: Callable[[nnx.Rngs], Receiver] = lambda rngs: Receiver(
            g.n_attributes, g.n_values, a.vocab_size, a.cell, a.hidden_size, a.embedding_size, rngs=rngs)
        # the graph definitions of abstract modules: nothing is initialised (eagerly that cost 3.4 s of start-up)
        self.sender_def, _ = nnx.split(nnx.eval_shape(lambda: self.make_sender(nnx.Rngs(0))))
        self.receiver_def, _ = nnx.split(nnx.eval_shape(lambda: self.make_receiver(nnx.Rngs(0))))

    def sender(self, params) -> Sender:
        return nnx.merge(self.sender_def, params)

    def receiver(self, params) -> Receiver:
        return nnx.merge(self.receiver_def, params)

    def init(self, key: jax.Array) -> tuple[nnx.State, nnx.State]:
        key_s, key_r = jax.random.split(key)
        return self.init_sender(key_s), self.init_receiver(key_r)

    def init_sender(self, key: jax.Array) -> nnx.State:
        return nnx.state(self.make_sender(nnx.Rngs(key)))

    def init_receiver(self, key: jax.Array) -> nnx.State:
        return nnx.state(self.make_receiver(nnx.Rngs(key)))
