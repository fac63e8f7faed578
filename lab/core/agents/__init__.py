"""Agents: the `agents` config section, the architectures by name, and `Agents`, their static part.

Every architecture implements the protocol of lab.core.agents.protocol; `ARCHITECTURES` maps
`agents.cell` to its (sender, receiver) classes, each built `from_config(view, agents_config,
rngs=...)` (`ObjectView`: how the agents see the objects). A new architecture is one module and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
from flax import nnx

from games.fields import ConfigError, doc
from lab.core.agents.protocol import Features, Message, ObjectView, Receiver, Sender, make_message
from lab.core.agents.rnn import RNNCell, RNNReceiver, RNNSender
from lab.core.agents.transformer import TransformerReceiver, TransformerSender

ARCHITECTURES: dict[str, tuple[type, type]] = {
    "gru": (RNNSender, RNNReceiver),
    "lstm": (RNNSender, RNNReceiver),
    "transformer": (TransformerSender, TransformerReceiver),
}
CELLS = tuple(ARCHITECTURES)

__all__ = ["ARCHITECTURES", "CELLS", "Agents", "AgentsConfig", "Features", "Message", "ObjectView", "RNNCell",
           "RNNReceiver", "RNNSender", "Receiver", "Sender", "TransformerReceiver", "TransformerSender", "make_message"]


@dataclass(frozen=True)
class AgentsConfig:
    cell: str = doc("architecture of sender and receiver: a recurrent cell (gru, lstm) or transformer", "gru", choices=CELLS)
    hidden_size: int = doc("hidden units of both recurrent cells", 128, low=1)
    embedding_size: int = doc("symbol embedding size of the recurrent cells", 32, low=1)
    vocab_size: int = doc("symbols, EOS (symbol 0) included", 10, low=2)
    max_len: int = doc("message positions, the EOS position included", 5, low=1, high=100,
                       why="the training step unrolls both agents over every position: its compile time grows with "
                           "max_len, about a second a position on 2 CPU cores")
    width: int = doc("transformer: model width (symbol embeddings, attention, residual stream; the MLP is 4 x width)",
                     64, low=1)
    # one block: on the default game at train.lr=0.001 two learned no faster (2 seeds, 600 steps: train accuracy 0.63 and
    # 0.58 against 0.64 and 0.86; embeddings of std 1) at twice the compute
    layers: int = doc("transformer: blocks of the sender's decoder and of the receiver's encoder", 1, low=1)
    heads: int = doc("transformer: attention heads per block (they split the width)", 4, low=1)

    def validate(self, config) -> None:
        if self.cell == "transformer" and self.width % self.heads:
            raise ConfigError(f"agents.heads={self.heads}: must divide agents.width={self.width} "
                              f"(each head attends over width / heads units)")


class Agents:
    """The static part of the agents of a game (NNX graph definitions); parameters are pure pytrees.

    `sender(params)` / `receiver(params)` rebuild the modules from parameters; `init(key)` gives
    fresh `(sender_params, receiver_params)`. They see the game's referents through its `features` (`ObjectView.of`).
    """

    def __init__(self, game, agents_config: AgentsConfig):
        a, view = agents_config, ObjectView.of(game)
        self.config = a
        sender_class, receiver_class = ARCHITECTURES[a.cell]
        self.make_sender: Callable[[nnx.Rngs], Sender] = lambda rngs: sender_class.from_config(view, a, rngs=rngs)
        self.make_receiver: Callable[[nnx.Rngs], Receiver] = lambda rngs: receiver_class.from_config(view, a, rngs=rngs)
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
