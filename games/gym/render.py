"""ansi rendering: a readable view of one episode, showing only what the agent's role may see."""

from __future__ import annotations

from typing import Any

import numpy as np

from games.gym.episode import to_numpy
from games.lewis import EnvState, LewisGame


def _message_text(message) -> str:
    symbols = []
    for s in message:
        if s == 0:
            symbols.append("<eos>")
            break
        symbols.append(str(int(s)))
    return " ".join(symbols)


def render_episode(game: LewisGame, role: str, state: dict[str, np.ndarray], outcome: dict[str, Any] | None) -> str:
    """A readable view of one episode of `game`: before the agent's move, only what its role may see."""
    lines = [f"Lewis {game.kind} game, the agent is the {role}"]
    over = outcome is not None
    show_target = over or role == "speaker"
    show_message = over or role == "listener"
    lines.append("target: " + (game.describe(state["target"]) if show_target else "? (for the listener to find)"))
    lines.append("message: " + (_message_text(state["message"]) if show_message else "? (for the speaker to send)"))
    if game.n_candidates > 1 and show_message:
        lines.append("candidates:")
        for c, candidate in enumerate(state["candidates"]):
            mark = "   <- target" if over and c == state["target_index"] else ""
            lines.append(f"  {c}: {game.describe(candidate)}{mark}")
    if over:
        guess = outcome["guess"]
        guess_text = game.describe_guess(guess)
        verdict = "right" if outcome["success"] else "wrong"
        lines.append(f"guess: {guess_text} -> {verdict} (reward {float(outcome['reward']):.2f})")
    return "\n".join(lines) + "\n"


def state_view(state: EnvState) -> dict[str, np.ndarray]:
    return to_numpy({"target": state.target, "message": state.message, "candidates": state.candidates,
                      "target_index": state.target_index})
