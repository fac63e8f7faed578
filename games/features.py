"""Referential discrimination over given feature vectors (`game.kind=features`).

The game large-scale emergent-communication work plays over precomputed image embeddings: the
referents are the rows of `game.features`, an `.npy` array `[n, d]` float32 (one embedding per
image, say). The speaker sees the target's feature vector; the listener sees the target and
`game.n_distractors` other referents drawn uniformly from the set without replacement, shuffled,
and picks one. Reward and success: 1 if it picks the target (games.discrimination).

`game.labels` (optional) is an `.npy` array `[n, K]` of integer attributes of the referents
(a shape and a colour id per image, say). Given them, the language metrics (topsim, posdis,
bosdis) read them, `game.split=compositional` holds out label combinations never seen in
training (every value of every attribute stays in train; all referents of a held-out
combination are in test) and `game.groups=attribute` groups by one of them. Without labels the
evaluation reports accuracy, loss and the message statistics, and there are no combinations to
hold out: `game.split=compositional` (the default) holds out referents drawn at random, as `iid`.

Files are checked at the boundary, each failure one line naming the field: the `.npy` header
(format version, dtype, shape, size limits) before any data is read, then the values (finite;
labels non-negative and below MAX_LABEL_VALUES). Nothing is unpickled (`np.load(allow_pickle=False)`).

    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "f.npy")
    >>> np.save(path, np.eye(6, 3, dtype=np.float32))
    >>> read_features(path).shape
    (6, 3)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from games import distributions, splits
from games.discrimination import LewisDiscrimination
from games.fields import ConfigError
from games.lewis import EnvParams
from games.world import World

MAX_REFERENTS = 200_000  # rows of game.features
MAX_DIMENSION = 8192  # columns of game.features
MAX_FEATURE_VALUES = 1 << 24  # n x d (64 MiB of float32): the referents live in the compiled programs
MAX_ATTRIBUTES = 64  # columns of game.labels
MAX_LABEL_VALUES = 1024  # values per attribute: the metrics tabulate attribute values x symbols


def _quote(path) -> str:
    text = str(path)
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _header(path: Path, field: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) from an `.npy` file's header, read without its data."""
    where = f"{field}={_quote(path)}"
    if not path.is_file():
        raise ConfigError(f"{where}: no such file")
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read is None:
                raise ConfigError(f"{where}: .npy format version {version[0]}.{version[1]}; allowed 1.0 and 2.0 "
                                  f"(what np.save writes)")
            shape, _, dtype = read(f)
    except ConfigError:
        raise
    except (OSError, ValueError) as error:
        raise ConfigError(f"{where}: not an .npy file ({str(error).splitlines()[0][:80]})") from None
    return shape, dtype


def _feature_header(where: str, shape: tuple, dtype: np.dtype) -> None:
    if len(shape) != 2:
        raise ConfigError(f"{where}: expected a 2-d array [n, d], got shape {shape}")
    n, d = shape
    if dtype != np.float32:
        raise ConfigError(f"{where}: dtype {dtype}; expected float32 (np.save(path, x.astype(np.float32)))")
    if not 2 <= n <= MAX_REFERENTS or not 1 <= d <= MAX_DIMENSION or n * d > MAX_FEATURE_VALUES:
        raise ConfigError(f"{where}: shape {shape}; allowed 2..{MAX_REFERENTS} rows, 1..{MAX_DIMENSION} columns, "
                          f"at most {MAX_FEATURE_VALUES} values")


def _feature_values(where: str, array: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(array)
    if bad.any():
        row, column = np.argwhere(bad)[0]
        raise ConfigError(f"{where}: {int(bad.sum())} values are not finite (the first at row {row}, column {column})")
    return array


def _label_header(where: str, shape: tuple, dtype: np.dtype) -> None:
    if len(shape) != 2:
        raise ConfigError(f"{where}: expected a 2-d array [n, K], got shape {shape}")
    if dtype.kind not in "iu":
        raise ConfigError(f"{where}: dtype {dtype}; expected integers (attribute values 0, 1, ...)")
    if not 1 <= shape[1] <= MAX_ATTRIBUTES or shape[0] > MAX_REFERENTS:
        raise ConfigError(f"{where}: shape {shape}; allowed at most {MAX_REFERENTS} rows and 1..{MAX_ATTRIBUTES} columns")


def _label_values(where: str, array: np.ndarray) -> np.ndarray:
    if array.size and (array.min() < 0 or array.max() >= MAX_LABEL_VALUES):
        raise ConfigError(f"{where}: values in [{array.min()}, {array.max()}]; allowed 0..{MAX_LABEL_VALUES - 1}")
    return array.astype(np.int32)


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int, field: str, header_check, value_check) -> np.ndarray:
    """The checked array of one version of a file (the config's validation and the world read it once)."""
    shape, dtype = _header(Path(path), field)
    where = f"{field}={_quote(path)}"
    if dtype.hasobject:
        raise ConfigError(f"{where}: holds Python objects (dtype {dtype}); the lab never unpickles a file")
    header_check(where, shape, dtype)
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ConfigError(f"{where}: could not be read ({str(error).splitlines()[0][:80]})") from None
    if array.shape != shape:
        raise ConfigError(f"{where}: holds {array.shape}, its header said {shape}")
    array = value_check(where, array)
    array.setflags(write=False)
    return array


def _read(path: str, field: str, header_check, value_check) -> np.ndarray:
    resolved = Path(path).expanduser()
    try:
        stat = os.stat(resolved)
    except OSError:
        raise ConfigError(f"{field}={_quote(path)}: no such file") from None
    return _load(str(resolved), stat.st_mtime_ns, stat.st_size, field, header_check, value_check)


def read_features(path: str, field: str = "game.features") -> np.ndarray:
    """`[n, d]` float32, read-only: the checked feature vectors of an `.npy` file."""
    return _read(path, field, _feature_header, _feature_values)


def read_labels(path: str, n: int, field: str = "game.labels") -> np.ndarray:
    """`[n, K]` int32, read-only: the checked integer attributes of the `n` referents."""
    labels = _read(path, field, _label_header, _label_values)
    if labels.shape[0] != n:
        raise ConfigError(f"{field}={_quote(path)}: {labels.shape[0]} rows; game.features has {n} referents, one row each")
    return labels


def compositional_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) rows: test holds every referent of a held-out label combination, and every value of every
    attribute stays in train (games.splits.compositional_split over the distinct combinations)."""
    combinations, row_combination = np.unique(labels, axis=0, return_inverse=True)
    _, held_out = splits.compositional_split(combinations, int(labels.max()) + 1, test_fraction, seed)
    in_test = np.isin(row_combination.reshape(-1), held_out)
    return np.flatnonzero(~in_test), np.flatnonzero(in_test)


class FeatureDiscrimination(LewisDiscrimination):
    """Referential discrimination whose referents are given feature vectors (module doc)."""

    kind = "features"
    AXES = ("rarity", "distractors")
    DEFAULT_AXIS = "distractors"
    referent_dtype = jnp.float32
    OBJECTS = False

    def __init__(self, n_features: int, n_attributes: int, n_values: int, vocab_size: int, max_len: int,
                 n_distractors: int = 4):
        super().__init__(n_attributes, n_values, vocab_size, max_len, n_distractors)
        self._n_features = n_features

    # -- the world and the config -----------------------------------------------------------------------
    @staticmethod
    def world(config) -> World:
        """The referents of `game.features` (`game.n_objects` of them sampled when it is not 0), split, with labels."""
        features = read_features(config.features)
        labels = read_labels(config.labels, len(features)) if config.labels else None
        if config.n_objects:
            rows = np.sort(np.random.default_rng(config.seed).choice(len(features), config.n_objects, replace=False))
            features, labels = features[rows], None if labels is None else labels[rows]
        n = len(features)
        if config.split == "compositional" and labels is not None:
            try:
                train, test = compositional_split(labels, config.test_fraction, config.seed)
            except ValueError as error:
                raise ConfigError(f"game.split='compositional': {error}") from None
        else:  # without labels there are no combinations to hold out: compositional draws at random (module doc)
            kind = "iid" if config.split == "compositional" else config.split
            train, test = splits.split(features, 0, kind, config.test_fraction, config.seed)
        probs = distributions.make(config.distribution, len(train), config.zipf_exponent, config.seed)
        n_attributes, n_values = (0, 0) if labels is None else (labels.shape[1], int(labels.max()) + 1 if n else 0)
        return World(n_attributes, n_values, features, train, test, probs, attributes=labels)

    @staticmethod
    def n_referents(config) -> int:
        return config.n_objects or len(read_features(config.features))

    @staticmethod
    def has_attributes(config) -> bool:
        return bool(config.labels)

    @classmethod
    def n_train(cls, config) -> int:
        return len(cls.world(config).train)

    @classmethod
    def validate(cls, config) -> None:
        if not config.features:
            raise ConfigError("game.kind='features': set game.features to an .npy file of the referents' feature "
                              "vectors [n, d] float32")
        if config.validation_fraction > 0:
            raise ConfigError(f"game.validation_fraction={config.validation_fraction}: the features game holds out no "
                              f"validation split; set it to 0")
        n = len(read_features(config.features))
        labels = read_labels(config.labels, n) if config.labels else None
        if config.n_objects > n:
            raise ConfigError(f"game.n_objects={config.n_objects}: more than the {n} referents of game.features; "
                              f"allowed 0..{n}")
        if config.hard_negatives:
            raise ConfigError("game.hard_negatives=true: the features game draws its distractors uniformly from the set")
        if labels is None and config.groups == "attribute":
            raise ConfigError("game.groups='attribute' needs attributes: give game.labels (an .npy [n, K] of integers), "
                              "or use another grouping")
        if labels is not None and config.groups == "attribute" and config.group_attribute >= labels.shape[1]:
            raise ConfigError(f"game.group_attribute={config.group_attribute}: game.labels has {labels.shape[1]} "
                              f"attributes; allowed 0..{labels.shape[1] - 1}")
        if labels is not None and config.split == "compositional" and labels.shape[1] < 2:
            raise ConfigError("game.split='compositional' needs at least 2 attributes in game.labels; use split=iid")
        n_train = len(cls.world(config).train)  # the split itself may be impossible
        if config.n_distractors + 1 > n_train:
            raise ConfigError(f"game.n_distractors={config.n_distractors}: needs at least {config.n_distractors + 1} train "
                              f"referents, the split leaves {n_train}")

    @classmethod
    def from_config(cls, config, world: World, vocab_size: int, max_len: int) -> "FeatureDiscrimination":
        return cls(world.objects.shape[1], world.n_attributes, world.n_values, vocab_size, max_len, config.n_distractors)

    # -- what agents see of a referent ---------------------------------------------------------------------
    @property
    def n_features(self) -> int:
        return self._n_features

    def features(self, referents: jax.Array) -> jax.Array:
        """The feature vectors themselves, `[..., d]`."""
        return referents

    # -- episodes -------------------------------------------------------------------------------------------
    def distractor_logits(self, key, params: EnvParams, target_id) -> jax.Array:
        """Uniform over the referents: every other one is equally likely to be drawn."""
        return jnp.zeros(params.objects.shape[0])

    # -- rendering -------------------------------------------------------------------------------------------
    @staticmethod
    def describe_split(config) -> str:
        if config.split == "compositional" and not config.labels:
            return "drawn at random: without game.labels there are no combinations to hold out"
        return LewisDiscrimination.describe_split(config)

    @staticmethod
    def describe_world(config) -> str:
        return f"feature vectors of {read_features(config.features).shape[1]} numbers"

    @staticmethod
    def describe_referents(config, n: int) -> str:
        labels = " with integer labels (game.labels)" if config.labels else ""
        return f"{n} given feature vectors of {read_features(config.features).shape[1]} numbers{labels}"

    def describe(self, referent) -> str:
        values = np.asarray(referent, np.float32)
        shown = " ".join(f"{v:.2f}" for v in values[:4])
        return f"[{shown}{' ...' if len(values) > 4 else ''}] (d={len(values)})"
