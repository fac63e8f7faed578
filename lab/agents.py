"""Sender and receiver agents (Flax NNX), used functionally by the trainer.

Sender: object -> one-hot `[K*V]` -> linear -> initial hidden state of a recurrent decoder
that emits `max_len` symbols (symbol 0 is EOS; after the first EOS the message is padding).
Receiver: reads the message with a recurrent encoder and, at every position, outputs
K attribute distributions (reconstruction) or an embedding scored against candidates
(discrimination); the trainer reads the output at the position where the message ends.

The recurrent cells fuse their gates into one matrix, and a symbol enters a cell through a
table `embedding @ W_input` `[vocab, gates*H]`: a symbol (hard or Gumbel-soft one-hot) times
that table is the same as embedding then projecting, with fewer flops in the hot loop.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

CELLS = ("gru", "lstm")


class Cell(nnx.Module):
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

    def step(self, carry, x_proj: jax.Array):
        H = self.hidden_size
        if self.kind == "gru":
            h = carry
            gh = h @ self.w_hidden[...]  # [B, 3H]
            r = jax.nn.sigmoid(x_proj[:, :H] + gh[:, :H])
            z = jax.nn.sigmoid(x_proj[:, H : 2 * H] + gh[:, H : 2 * H])
            n = jnp.tanh(x_proj[:, 2 * H :] + r * gh[:, 2 * H :])
            return (1.0 - z) * n + z * h
        h, c = carry
        g = x_proj + h @ self.w_hidden[...]  # [B, 4H]: input, forget, cell, output
        i, f, u, o = (g[:, k * H : (k + 1) * H] for k in range(4))
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(u)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c


class Message(NamedTuple):
    symbols: jax.Array  # [B, T] int, 0 after the first EOS
    one_hot: jax.Array  # [B, T, vocab] what the receiver reads (straight-through soft in gumbel mode)
    log_prob: jax.Array  # [B] log pi(m|x), summed up to and including the first EOS
    entropy: jax.Array  # [B] mean per-position entropy over the same positions
    alive: jax.Array  # [B, T] 1 up to and including the first EOS


def eos_weights(eos: jax.Array) -> jax.Array:
    """P(message ends at t) `[B, T]` from per-position EOS indicators `eos: [B, T]` in [0, 1].

    ends_at[t] = eos[t] * prod_{s<t} (1 - eos[s]); the last position takes what is left. With hard
    indicators this is the one-hot of the end position; with straight-through ones it carries
    gradients (EGG's variable-length Gumbel-softmax loss).
    """
    not_yet = jnp.cumprod(1.0 - eos, axis=1)
    before = jnp.concatenate([jnp.ones_like(not_yet[:, :1]), not_yet[:, :-1]], axis=1)
    ends = before * eos
    return ends.at[:, -1].set(before[:, -1])


class Sender(nnx.Module):
    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, max_len: int, cell: str,
                 hidden_size: int, embedding_size: int, *, rngs: nnx.Rngs):
        self.n_attributes, self.n_values = n_attributes, n_values
        self.vocab_size, self.max_len = vocab_size, max_len
        self.encoder = nnx.Linear(n_attributes * n_values, hidden_size, rngs=rngs)
        self.embedding = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (vocab_size + 1, embedding_size)))  # +1: start symbol
        self.cell = Cell(cell, embedding_size, hidden_size, rngs=rngs)
        self.head = nnx.Linear(hidden_size, vocab_size, rngs=rngs)

    def _unroll(self, objects: jax.Array, choose, xs):
        """Run the decoder; `choose(logits, x) -> one_hot [B, vocab]` picks each symbol."""
        batch = objects.shape[0]
        x = jax.nn.one_hot(objects, self.n_values).reshape(batch, -1)
        carry = self.cell.initial_carry(self.encoder(x))
        table = self.embedding[...] @ self.cell.w_input[...] + self.cell.bias[...]  # [vocab+1, gates*H]
        start = jnp.broadcast_to(table[-1], (batch, table.shape[1]))

        def body(state, x_t):
            carry, x_proj = state
            carry = self.cell.step(carry, x_proj)
            logits = jax.nn.log_softmax(self.head(self.cell.hidden(carry)))  # [B, vocab]
            one_hot = choose(logits, x_t)
            return (carry, one_hot @ table[:-1]), (logits, one_hot)

        _, (logits, one_hot) = jax.lax.scan(body, (carry, start), xs, length=self.max_len)
        logits, one_hot = logits.swapaxes(0, 1), one_hot.swapaxes(0, 1)  # [B, T, vocab]
        return self._message(logits, one_hot)

    def _message(self, log_p: jax.Array, one_hot: jax.Array) -> Message:
        eos = one_hot[..., 0]  # [B, T]
        ended_before = jnp.concatenate([jnp.zeros_like(eos[:, :1]), jnp.cumsum(jax.lax.stop_gradient(eos), axis=1)[:, :-1]], axis=1)
        alive = (ended_before < 0.5).astype(log_p.dtype)
        symbols = jnp.argmax(one_hot, axis=-1) * alive.astype(jnp.int32)
        token_log_p = jnp.sum(log_p * jax.lax.stop_gradient(one_hot), axis=-1)
        token_entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
        return Message(
            symbols=symbols,
            one_hot=one_hot,
            log_prob=jnp.sum(token_log_p * alive, axis=1),
            entropy=jnp.sum(token_entropy * alive, axis=1) / jnp.sum(alive, axis=1),
            alive=alive,
        )

    def sample(self, objects: jax.Array, key: jax.Array) -> Message:
        """Messages drawn from pi(.|x): REINFORCE and the loss decomposition."""
        keys = jax.random.split(key, self.max_len)
        return self._unroll(objects, lambda logits, k: jax.nn.one_hot(jax.random.categorical(k, logits), self.vocab_size), keys)

    def greedy(self, objects: jax.Array) -> Message:
        """The most likely symbol at each position: the language the sender 'speaks'."""
        return self._unroll(objects, lambda logits, _: jax.nn.one_hot(jnp.argmax(logits, -1), self.vocab_size), None)

    def gumbel(self, objects: jax.Array, key: jax.Array, temperature: jax.Array) -> Message:
        """Straight-through Gumbel-softmax: hard one-hots forward, relaxed gradients backward."""
        keys = jax.random.split(key, self.max_len)

        def choose(logits, k):
            soft = jax.nn.softmax((logits + jax.random.gumbel(k, logits.shape)) / temperature)
            hard = jax.nn.one_hot(jnp.argmax(soft, -1), self.vocab_size)
            return soft + jax.lax.stop_gradient(hard - soft)

        return self._unroll(objects, choose, keys)

    def log_prob(self, objects: jax.Array, messages: jax.Array) -> jax.Array:
        """log pi(m|x) `[B]` of given messages `[B, T]` (teacher forcing)."""
        forced = jax.nn.one_hot(messages.swapaxes(0, 1), self.vocab_size)  # [T, B, vocab]
        return self._unroll(objects, lambda logits, x_t: x_t, forced).log_prob


class Receiver(nnx.Module):
    def __init__(self, n_attributes: int, n_values: int, vocab_size: int, cell: str, hidden_size: int,
                 embedding_size: int, *, rngs: nnx.Rngs):
        self.n_attributes, self.n_values = n_attributes, n_values
        self.embedding = nnx.Param(nnx.initializers.normal(1.0)(rngs.params(), (vocab_size, embedding_size)))
        self.cell = Cell(cell, embedding_size, hidden_size, rngs=rngs)
        # reconstruction: K softmax heads; discrimination: the message and candidate embeddings share a space
        self.head = nnx.Linear(hidden_size, n_attributes * n_values, rngs=rngs)
        self.candidate_encoder = nnx.Linear(n_attributes * n_values, n_attributes * n_values, rngs=rngs)

    def read(self, one_hot: jax.Array) -> jax.Array:
        """Hidden state after each position `[B, T, H]` of messages `one_hot: [B, T, vocab]`."""
        batch = one_hot.shape[0]
        table = self.embedding[...] @ self.cell.w_input[...] + self.cell.bias[...]  # [vocab, gates*H]
        carry = self.cell.initial_carry(jnp.zeros((batch, self.cell.hidden_size)))

        def body(carry, x_t):
            carry = self.cell.step(carry, x_t @ table)
            return carry, self.cell.hidden(carry)

        _, hidden = jax.lax.scan(body, carry, one_hot.swapaxes(0, 1))
        return hidden.swapaxes(0, 1)

    def reconstruct(self, one_hot: jax.Array) -> jax.Array:
        """log rho(x_k = v | m_{<=t}) `[B, T, K, V]`: a reading after every position."""
        logits = self.head(self.read(one_hot))
        return jax.nn.log_softmax(logits.reshape(*logits.shape[:-1], self.n_attributes, self.n_values))

    def discriminate(self, one_hot: jax.Array, candidates: jax.Array) -> jax.Array:
        """log rho(candidate c | m_{<=t}) `[B, T, C]` for `candidates: [B, C, K]`."""
        message = self.head(self.read(one_hot))  # [B, T, K*V]
        c = jax.nn.one_hot(candidates, self.n_values).reshape(*candidates.shape[:2], -1)
        scores = jnp.einsum("btd,bcd->btc", message, self.candidate_encoder(c))
        return jax.nn.log_softmax(scores)


def make_agents(config, key: jax.Array) -> tuple[Sender, Receiver]:
    """Fresh sender and receiver for a `lab.config.Config`."""
    g, a = config.game, config.agents
    key_s, key_r = jax.random.split(key)
    sender = Sender(g.n_attributes, g.n_values, a.vocab_size, a.max_len, a.cell, a.hidden_size, a.embedding_size,
                    rngs=nnx.Rngs(key_s))
    receiver = Receiver(g.n_attributes, g.n_values, a.vocab_size, a.cell, a.hidden_size, a.embedding_size,
                        rngs=nnx.Rngs(key_r))
    return sender, receiver
