"""A person plays one role of the game against a trained agent, and every game is recorded.

`Partner` holds what every sitting against one run shares (the trained agents, the world, their
lexicon); a `Sitting` is one person's rounds: it says who the person is and what they may type,
checks each answer, scores it with the game's own reward (through the gymnasium env,
`games.gym.LewisEnv`) and appends a row to the record (`Record`). The terminal (`lab play`, `play`
below) and the web page (`lab serve`, `lab.serve`) drive the same `Sitting`.

The record is a CSV file, one row per round, appended as each round ends, so an interrupted sitting
keeps its rounds and a new sitting never overwrites an earlier one: `COLUMNS`.
"""

from __future__ import annotations

import csv
import fcntl
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TextIO

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

import games
import games.gym  # the gymnasium adapters: LewisEnv
from games.languages import LETTERS, spell
from games.messages import truncate_at_eos
from lab.core.metrics import edit_distance_jax
from lab.core.spec import Spec
from lab.experiment import checkpoint, sizes
from lab.experiment.config import Config, ConfigError
from lab.experiment.language import greedy_messages, object_text
from lab.experiment.run import read_config

ROLES = ("speaker", "listener")
COLUMNS = ["participant", "sitting", "round", "role", "target", "held_out", "message", "guess", "reward", "seconds",
           "run", "partner_seed", "time"]
RECORD_FILE = Path("play") / "games.csv"
QUIT = ("q", "quit", "stop", "exit")


def _batched(fn, n_leading_single: int):
    """Call a batched function on one episode too (add and drop a leading axis)."""

    def call(*arrays):
        arrays = [np.asarray(a) for a in arrays]
        single = arrays[0].ndim == n_leading_single
        if single:
            arrays = [a[None] for a in arrays]
        out = np.asarray(fn(*[jnp.asarray(a) for a in arrays]))
        return out[0] if single else out

    return call


def trained_partners(config: Config, checkpoint_path: str | Path, index: int = 0, game: games.LewisGame | None = None):
    """(speaker partner, listener partner) from one seed of a run, as numpy callables (`game`: the run's, Spec(config).game)."""
    sender, receiver = checkpoint.load_agents(checkpoint_path, config, index)
    vocab_size, game = config.agents.vocab_size, game or Spec(config).game

    @jax.jit
    def speak(targets):
        return sender.greedy(targets).symbols

    @jax.jit
    def listen(messages, candidates):
        n = messages.shape[0]  # the listener is not shown the target: zeros where it would be
        episodes = games.EnvState(target=jnp.zeros((n, *candidates.shape[2:]), candidates.dtype), candidates=candidates,
                                  target_index=jnp.zeros(n, jnp.int32), message=messages, turn=jnp.ones(n, jnp.int32),
                                  shown=jnp.ones(candidates.shape[:2], bool))
        return jnp.argmax(game.read(receiver, jax.nn.one_hot(messages, vocab_size), episodes), -1)

    return _batched(speak, 1), _batched(listen, 1)


class Partner:
    """The other player, shared by every sitting against it: its world, its speaker and listener, its words.

    `of_run`: the trained agents of one seed of a run; `of_language`: a hand-made language (a word for each
    object), spoken by a lookup and read back by the closest word, for experiments on the languages themselves.
    """

    def __init__(self, game: games.LewisGame, vocab_size: int, max_len: int, world: games.World, speaker, listener,
                 words: dict[tuple, str], name: str, description: str, seed: int | None = None):
        self.game, self.vocab_size, self.max_len, self.world = game, vocab_size, max_len, world
        self.speaker, self.listener, self.words = speaker, listener, words
        self.name, self.description, self.seed = name, description, seed
        self.held_out = {tuple(o) for o in world.test_objects.tolist()}

    @classmethod
    def of_run(cls, run_dir: str | Path, index: int = 0) -> Partner:
        run_dir = Path(run_dir)
        config = read_config(run_dir)
        sizes.check_world(config)  # a config.yaml is input like any other: its world is listed below
        path = run_dir / checkpoint.FILENAME
        if not path.is_file():
            raise ConfigError(f"{str(run_dir)!r} has no {checkpoint.FILENAME}; is it a run directory written by `lab run`?")
        spec = Spec(config)
        if not spec.game.OBJECTS:
            raise ConfigError(f"game.kind={config.game.kind!r}: its referents are feature vectors; lab play is played over "
                              f"attribute-value objects")
        speaker, listener = trained_partners(config, path, index, spec.game)
        seed = int(checkpoint.read(path)["seeds"][index])
        world = spec.world
        words = {tuple(o): spell(m) for o, m in zip(world.objects.tolist(), greedy_messages(config, path)[index])}
        return cls(spec.game, config.agents.vocab_size, config.agents.max_len, world, speaker, listener, words, str(run_dir),
                   f"a trained agent (seed {seed} of {run_dir})", seed)

    @classmethod
    def of_language(cls, objects, messages, n_values: int, held_out=(), name: str = "a hand-made language") -> Partner:
        """A partner speaking `messages [n, max_len]` for `objects [n, K]`; `held_out`: row indices kept out of `hint`."""
        objects, messages = np.asarray(objects), np.asarray(messages)
        held = np.isin(np.arange(len(objects)), np.asarray(held_out, int))
        world = games.World(objects.shape[1], n_values, objects, np.flatnonzero(~held), np.flatnonzero(held),
                            np.full((~held).sum(), 1 / max((~held).sum(), 1)))
        vocab_size, max_len = int(messages.max()) + 1, messages.shape[1]
        game = games.LewisReconstruction(objects.shape[1], n_values, vocab_size, max_len)
        table = LanguagePartner(objects, messages)
        words = {tuple(o): spell(m) for o, m in zip(objects.tolist(), messages)}
        return cls(game, vocab_size, max_len, world, table.speak, table.read, words, name,
                   f"a partner who speaks {name}")

    def env(self, role: str) -> gymnasium.Env:
        """The partner's game on its world's objects, the partner playing the other role."""
        return games.gym.LewisEnv(game=self.game, objects=self.world.objects, role=role,
                                  partner=self.listener if role == "speaker" else self.speaker)

    def hint(self) -> str:
        """The partner's lexicon for the objects it learned on (the held-out ones are the test)."""
        pairs = sorted((w, object_text(o)) for o, w in self.words.items() if o not in self.held_out)
        width = max(len(w) for w, _ in pairs)
        lines = [f"  {w:<{width}}  {o}" for w, o in pairs]
        return "The partner's words for the objects it learned on (word, then object):\n" + "\n".join(lines) + "\n"


class LanguagePartner:
    """A hand-made language as numpy partners: it says each object's word, and reads a message as the object whose
    word is closest to it (fewest edits; the first such object on a tie). Batched or not, like every partner."""

    def __init__(self, objects: np.ndarray, messages: np.ndarray):
        self.objects, self.messages = objects, np.asarray(truncate_at_eos(messages))
        self.index = {tuple(o): i for i, o in enumerate(objects.tolist())}

    def speak(self, targets: np.ndarray) -> np.ndarray:
        flat = np.asarray(targets).reshape(-1, self.objects.shape[1])
        rows = [self.index[tuple(t)] for t in flat.tolist()]
        return self.messages[rows].reshape(*np.shape(targets)[:-1], self.messages.shape[1])

    def read(self, messages: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        flat = truncate_at_eos(np.asarray(messages).reshape(-1, self.messages.shape[1]))
        guesses = []
        for message in flat:
            distance = edit_distance_jax(np.broadcast_to(message, self.messages.shape), self.messages)
            guesses.append(self.objects[int(np.argmin(np.asarray(distance)))])
        return np.array(guesses).reshape(*np.shape(messages)[:-1], self.objects.shape[1])


class Record:
    """A CSV file of rounds (`COLUMNS`), appended one row at a time under a file lock; never truncated."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"--record {str(self.path)!r} is a folder; give a file name such as games.csv")
        if self.path.is_file() and self.path.stat().st_size > 0:
            with self.path.open(newline="") as f:
                header = next(csv.reader(f), [])
            if header != COLUMNS:
                raise ConfigError(f"--record {str(self.path)!r} holds another table (its columns: {', '.join(header[:4])}, ...); "
                                  f"give a new file name")

    def append(self, row: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                writer = csv.DictWriter(f, COLUMNS)
                if f.tell() == 0:
                    writer.writeheader()
                writer.writerow(row)
                f.flush()
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Feedback:
    text: str  # what to tell the person, in plain words
    reward: float
    row: dict  # the row recorded


class Sitting:
    """One person's rounds in one role against `partner`: the terminal and the web page drive it alike.

    Call `show()` for the round's view, then `answer(text)`: a `Feedback` when the answer was a move, or
    a `str` explaining, in plain words, why it was not (nothing is played or recorded then).
    """

    def __init__(self, partner: Partner, role: str, rounds: int, record: Record, participant: str = "anonymous",
                 seed: int | None = None):
        if role not in ROLES:
            raise ConfigError(f"--role {role!r}: allowed values are speaker, listener")
        if rounds < 1:
            raise ConfigError(f"--rounds {rounds}: play at least 1 round")
        self.partner, self.role, self.rounds, self.record = partner, role, rounds, record
        self.participant = participant.strip() or "anonymous"
        self.seed = secrets.randbelow(2**31) if seed is None else seed
        self.id = f"{datetime.now():%Y-%m-%dT%H:%M:%S}-{secrets.token_hex(2)}"
        self.env = partner.env(role)
        self.choose = isinstance(self.env.action_space, gymnasium.spaces.Discrete)  # the listener picks among candidates
        self.n_attributes, self.n_values = partner.game.n_attributes, partner.game.n_values
        self.vocab_size, self.max_len = partner.vocab_size, partner.max_len
        self.round, self.scores = 0, []
        self._next()

    # -- what the person is told -----------------------------------------------------------------
    def intro(self) -> str:
        K, V = self.n_attributes, self.n_values
        other = "listener" if self.role == "speaker" else "speaker"
        letters = f"{LETTERS[0]}-{LETTERS[self.vocab_size - 2]}" if self.vocab_size > 2 else "a"
        lines = [f"You are the {self.role.upper()}. Your partner, the {other}, is {self.partner.description}.",
                 "Each round the speaker sees an object and sends a message; the listener says which object it was."]
        if self.choose:
            lines.append(f"The listener is shown {self.partner.game.n_candidates} objects and picks one.")
        lines += [f"Objects have {K} attributes (numbered 1 to {K}), each with a value from 0 to {V - 1}; an object is "
                  f"written as its values, attribute 1 first, e.g. {object_text(self.partner.world.objects[-1])}.",
                  f"Messages are words of 1 to {self.max_len} letters from {letters} ({self.vocab_size - 1} symbols).",
                  self._how_to_answer() + ' An empty line is not an answer; type "quit" to stop.']
        if self.role == "listener" and not self.choose:
            lines.append("You get credit for every attribute you get right.")
        lines.append(f"{self.rounds} rounds; each is recorded in {self.record.path} as participant {self.participant!r} "
                     f"(targets drawn with --seed {self.seed}).")
        return "\n".join(lines) + "\n"

    def _how_to_answer(self) -> str:
        if self.role == "speaker":
            return f"Type a message: letters only, e.g. {spell(np.arange(min(3, self.max_len, self.vocab_size - 1), 0, -1))}."
        if self.choose:
            return f"Type the number of the object you choose (1 to {self.partner.game.n_candidates})."
        return (f"Type the object's {self.n_attributes} values separated by spaces, "
                f"e.g. {object_text(self.partner.world.objects[0])}.")

    def show(self) -> dict:
        """The round's view: `round`, `rounds`, and `object` (speaker) or `message` and `candidates` (listener)."""
        view = {"round": self.round, "rounds": self.rounds}
        if self.role == "speaker":
            view["object"] = object_text(self._obs)
        else:
            view["message"] = spell(self._obs["message"])
            if self.choose:
                view["candidates"] = [object_text(c) for c in self._obs["candidates"]]
        return view

    def show_text(self) -> str:
        view = self.show()
        lines = [f"Round {view['round']} of {view['rounds']}"]
        if self.role == "speaker":
            lines.append(f"  the object: {view['object']}")
        else:
            lines.append(f'  the speaker says: "{view["message"]}"')
            lines += [f"  {i + 1}: {c}" for i, c in enumerate(view.get("candidates", []))]
        return "\n".join(lines) + "\n"

    def prompt(self) -> str:
        return "  your message> " if self.role == "speaker" else "  your choice> " if self.choose else "  your guess> "

    @property
    def over(self) -> bool:
        return self.round > self.rounds

    # -- the person's move -----------------------------------------------------------------------
    def answer(self, text: str) -> Feedback | str:
        """Play `text` as this round's move: a `Feedback` (recorded), or a plain-language reason it is not a move."""
        if self.over:
            return "the sitting is over"
        action = self._parse(text)
        if isinstance(action, str):
            return action
        seconds = time.monotonic() - self._shown_at
        _, reward, _, _, info = self.env.step(action)
        target = info["target"]
        guess = info["candidates"][int(info["guess"])] if self.choose else info["guess"]
        row = {"participant": self.participant, "sitting": self.id, "round": self.round, "role": self.role,
               "target": object_text(target), "held_out": tuple(target.tolist()) in self.partner.held_out,
               "message": spell(info["message"]), "guess": object_text(guess), "reward": round(float(reward), 4),
               "seconds": round(seconds, 2), "run": self.partner.name, "partner_seed": "" if self.partner.seed is None else self.partner.seed,
               "time": f"{datetime.now():%Y-%m-%dT%H:%M:%S}"}
        self.record.append(row)
        self.scores.append(float(reward))
        text = self._verdict(target, guess, float(reward), info)
        self._next()
        return Feedback(text, float(reward), row)

    def _verdict(self, target, guess, reward: float, info) -> str:
        if self.choose:
            right = int(info["target_index"]) + 1
            said = "you chose" if self.role == "listener" else "the listener chose"
            return (f"right: it was object {right}" if reward > 0 else
                    f"wrong: {said} object {int(info['guess']) + 1}, it was object {right} ({object_text(target)})")
        n_right = int(np.sum(np.asarray(target) == np.asarray(guess)))
        score = f"{n_right} of {self.n_attributes} attributes right"
        if self.role == "speaker":
            return f'the listener understood "{spell(info["message"])}" as {object_text(guess)}: {score}'
        return f"{score}" + ("" if n_right == self.n_attributes else f": the object was {object_text(target)}")

    def summary(self) -> str:
        if not self.scores:
            return "no rounds played\n"
        return f"mean score over {len(self.scores)} rounds: {np.mean(self.scores):.2f} (1 = every round fully right)\n"

    def _next(self) -> None:
        self.round += 1
        if self.over:
            return
        self._obs, _ = self.env.reset(seed=self.seed if self.round == 1 else None)
        self._shown_at = time.monotonic()

    def _parse(self, text: str):
        """The action `text` stands for, or a plain-language reason it stands for none."""
        text = text.strip()
        if not text:
            how = self._how_to_answer()
            return "an empty line is not an answer: " + how[0].lower() + how[1:]
        if self.role == "speaker":
            return self._parse_message(text)
        if self.choose:
            n = self.partner.game.n_candidates
            if not text.isdigit() or not 1 <= int(text) <= n:
                return f"{text[:20]!r} is not an object number: type one number from 1 to {n}"
            return int(text) - 1
        return self._parse_object(text)

    def _parse_object(self, text: str):
        parts = text.replace(",", " ").split()
        K, V = self.n_attributes, self.n_values
        for part in parts:
            if not part.isdigit():
                return f"{part[:20]!r} is not a value: type {K} numbers from 0 to {V - 1} separated by spaces"
        if len(parts) != K:
            return f"you typed {len(parts)} value{'s' if len(parts) != 1 else ''}; an object has {K}, one per attribute"
        values = [int(p) for p in parts]
        for k, v in enumerate(values):
            if v >= V:
                return f"attribute {k + 1} has no value {v}: the values are 0 to {V - 1}"
        return np.array(values, np.int64)

    def _parse_message(self, text: str):
        letters = "".join(text.split()).lower()
        allowed = LETTERS[: self.vocab_size - 1]
        for ch in letters:
            if ch not in allowed:
                return f"{ch[:20]!r} is not one of the symbols: use the letters {allowed}"
        if len(letters) > self.max_len:
            return f"{len(letters)} letters is too long: a message has at most {self.max_len}"
        symbols = [allowed.index(ch) + 1 for ch in letters]
        return np.array(symbols + [0] * (self.max_len - len(symbols)), np.int64)  # the message ends after its letters


def play(run_dir: str | Path | Partner, role: str = "listener", rounds: int = 10, index: int = 0, seed: int | None = None,
         participant: str = "anonymous", record: str | Path | None = None, hint: bool = False,
         stdin: TextIO | None = None, stdout: TextIO | None = None) -> Sitting:
    """Play `rounds` rounds in the terminal against a run's agent (or any `Partner`); each round is appended to
    `record` (default RUN/play/games.csv; required for a partner that is not a run)."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    partner = run_dir if isinstance(run_dir, Partner) else Partner.of_run(run_dir, index)
    if record is None and isinstance(run_dir, Partner):
        raise ConfigError("record: give the CSV file to append the rounds to")
    sitting = Sitting(partner, role, rounds, Record(record or Path(run_dir) / RECORD_FILE), participant, seed)
    stdout.write(sitting.intro() + "\n")
    if hint:
        stdout.write(partner.hint() + "\n")
    while not sitting.over:
        stdout.write(sitting.show_text())
        while True:
            stdout.write(sitting.prompt())
            stdout.flush()
            line = stdin.readline()
            if not line or line.strip().lower() in QUIT:
                stdout.write("\nstopped.\n" + sitting.summary())
                return sitting
            outcome = sitting.answer(line)
            if isinstance(outcome, Feedback):
                stdout.write(f"  {outcome.text}\n\n")
                break
            stdout.write(f"  {outcome}\n")
    stdout.write(sitting.summary())
    return sitting
