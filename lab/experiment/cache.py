"""Compiling less: JAX's persistent compilation cache, and XLA's quicker CPU compiles; both on with `lab.setup()`.

The cache is on by default for `lab run`, `lab sweep`, the studies and the notebooks.

A config compiled once is not compiled again in a new process (a second `lab run`, a notebook
kernel restart): the compiled programs are kept in a folder, by default `~/.cache/lewis-lab/jax`.
Set `LAB_CACHE=/another/folder` to move it, or `LAB_CACHE=off` to turn it off.

On a CPU, compiling is most of a short run's time. `quick_compiles()` sets XLA's backend
optimisation level to 1 and turns off LLVM's expensive passes: each compile takes about 40-50% less
(105 s -> 64 s for a curriculum-adam program, 44 s -> 19 s for the default block, measured on 2
busy cores) and the compiled steps run about as fast. It also turns off XLA's newer CPU fusion
emitters: the default evaluation compiles in 2.3 s instead of 4.5 s and 100 steps in 2.2 s instead
of 3.5-4.5 s (8 seeds, 2-core EPYC), and the steps run no slower (one seed 17.7k -> 19.9k games/s in
that run). It turns off LLVM's loop unrolling and SLP vectorizer in XLA's kernels (backend extra options): the
default run's programs (8 seeds) compile in 4.8-5.5 s instead of 5.7-6.2 s (4 alternating rounds, 2-core AMD EPYC,
2026-12-06), and the steps and the evaluation run as fast (one seed's steps 28.5-31.2k games/s against 29.1-30.2k,
3 rounds each). The flags are `QUICK_COMPILES`. With jaxlib 0.10 (`YNN_JAXLIB`) it also hands XLA's elementwise
and reduction fusions to the YNNPACK library, as XLA does the matmuls (`YNN_FUSIONS`): fewer kernels for LLVM to
compile (the default steps 341 -> 251, the evaluation 203 -> 197) and one seed's steps 15-20% faster (36.9-37.7k
games/s against 29.9-32.6k, 3 alternating rounds, 2-core AMD EPYC, 2026-12-06); runs differ from before in their last
digits. It does nothing when `XLA_FLAGS` already names an optimisation level (yours wins) or when a CUDA plugin
is installed (the flags are for CPU code), and nothing that counts when JAX has already started (XLA has read
its flags; `lab.setup()` comes first).

Finding a cached program still costs its tracing and lowering (1.3-1.5 s for each of a run's two
programs, one seed, 2-core Xeon). `lower(fn, args, fingerprint)` keeps the lowered program itself, through
`jax.export`, in the cache's `exported/` folder: a new process with the same fingerprint (a trainer made
from its config alone: the config, its groups), the same argument shapes, dtypes and shardings, the lab's
same source and the same versions of jax, jaxlib, flax, optax and numpy (`TRACED_BY`) loads it instead
(0.1-0.3 s), then finds its compiled code in the cache as before. A change to any of those is another
file; a file that does not load is made again.

Nothing in the cache is unpickled. A kept program is one file: its full key, the sha256 of the exported program
and the tree of its outputs written as data (JSON: type names looked up among the trusted packages already
imported, `TREE_PACKAGES`), then the program. A file whose key is not the key asked for (copied under another
config's name), whose digest differs (damaged) or that does not parse is not used: a CacheWarning, then the
program is traced and kept again. The folder must still be trusted like the code: a program whose key and digest
match is run as it is, and JAX's compiled programs sit there too.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

DEFAULT = Path.home() / ".cache" / "lewis-lab" / "jax"
OFF = ("off", "0", "false", "no", "none", "")
QUICK_COMPILES = ("--xla_backend_optimization_level=1 --xla_llvm_disable_expensive_passes=true "
                  "--xla_cpu_use_fusion_emitters=false "
                  "--xla_backend_extra_options=xla_cpu_disable_slp_vectorizer,xla_cpu_disable_loop_unrolling")
# an experimental flag: added only for the jaxlib versions it was tested with (XLA stops a process on a flag it does
# not know, and an experimental one may be renamed; pyproject asks for jax 0.10.2 or later)
YNN_FUSIONS = "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce"
YNN_JAXLIB = ((0, 10, 2), (0, 11))  # from, up to (excluded)


def folder() -> Path | None:
    """Where the cache lives under the current environment, or None when it is off.

The folder must be trusted like the lab's code: JAX loads compiled programs from it, and the programs kept here
(`lower`) are loaded as they are when their key and digest match."""
    value = os.environ.get("LAB_CACHE")
    if value is None:
        return DEFAULT
    return None if value.strip().lower() in OFF else Path(value).expanduser()


@functools.cache
def usable(path: Path) -> bool:
    """Whether the lab can write in `path` (created if need be); warns once (CacheWarning) when it cannot."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        ok = path.is_dir() and os.access(path, os.W_OK | os.X_OK)
        reason = "not a folder the lab may write in"
    except OSError as error:
        ok, reason = False, error.strerror or str(error)
    if not ok:
        warnings.warn(f"LAB_CACHE={str(path)!r}: {reason}; compiling without a cache", CacheWarning, stacklevel=2)
    return ok


def enable() -> Path | None:
    """Turn the persistent cache on (idempotent); returns its folder, or None when `LAB_CACHE=off` or when the
    folder cannot be written (a warning, then no cache)."""
    path = folder()
    if path is None or not usable(path):
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def gpu_plugin() -> bool:
    """Whether a CUDA or ROCm plugin for JAX is installed (the CPU settings here and in lab.experiment.execute are off)."""
    return any(importlib.util.find_spec(p) for p in ("jax_cuda12_plugin", "jax_cuda13_plugin", "jax_rocm60_plugin"))


def quick_compiles() -> bool:
    """Add QUICK_COMPILES to XLA_FLAGS (module doc); whether it did. XLA reads them when JAX starts: call it before."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" in flags or gpu_plugin():
        return False
    ynn = YNN_JAXLIB[0] <= _version("jaxlib") < YNN_JAXLIB[1]
    os.environ["XLA_FLAGS"] = " ".join([flags, QUICK_COMPILES, YNN_FUSIONS if ynn else ""]).strip()
    return True


def _version(package: str) -> tuple[int, ...]:
    """`(major, minor, patch)` of an installed package (`0.10.2.dev1` -> `(0, 10, 2)`)."""
    return tuple(int(re.match(r"\d+", part).group()) for part in importlib.metadata.version(package).split(".")[:3])


# -- lowered programs kept with jax.export (module doc) -------------------------------------------

TRACED_BY = ("jax", "jaxlib", "flax", "optax", "numpy")


@functools.cache
def source_hash() -> str:
    """A hash of the lab's source (games, curricula, lab) and of the versions of the libraries that trace it."""
    h = hashlib.sha256()
    for package in TRACED_BY:
        h.update(f"{package}=={importlib.metadata.version(package)};".encode())
    root = Path(__file__).resolve().parents[2]
    for package in ("games", "curricula", "lab"):
        for path in sorted((root / package).rglob("*.py")):
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _exported_path(fingerprint: str | None, leaves, in_tree, jit_options) -> tuple[Path, str] | None:
    """Where a program is kept, and its full key (kept inside the file and compared on load)."""
    base = folder()
    if fingerprint is None or base is None or not usable(base):
        return None
    signature = [(tuple(a.shape), str(a.dtype), str(getattr(a, "sharding", None))) for a in leaves]
    options = sorted((k, str(v)) for k, v in jit_options.items())
    key = repr((source_hash(), fingerprint, str(in_tree), signature, options, jax.default_backend()))
    return base / "exported" / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.bin", key


# -- an output tree as data (JSON): nothing is unpickled -----------------------------------------------

MAGIC = b"lab exported program, format 2\n"
MAX_HEADER = 1 << 24
BUILTIN_NODES = {"dict": dict, "list": list, "tuple": tuple, "None": type(None)}
# the packages whose registered pytree types an output tree may name (looked up among imported modules, never imported)
TREE_PACKAGES = ("lab", "games", "curricula", "jax", "flax", "optax", "collections")


class CacheWarning(UserWarning):
    """A kept program that was not used: damaged, written for another key, or not writable."""


def _type_name(kind: type) -> str:
    for name, builtin in BUILTIN_NODES.items():
        if kind is builtin:
            return name
    return f"{kind.__module__}:{kind.__qualname__}"


def _type_of(name: str) -> type:
    if name in BUILTIN_NODES:
        return BUILTIN_NODES[name]
    module, _, qualname = name.partition(":")
    if module.split(".")[0] not in TREE_PACKAGES or module not in sys.modules:
        raise ValueError(f"a tree node of {name[:80]!r}, a type of no imported package the lab trusts")
    found = sys.modules[module]
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, type):
        raise ValueError(f"{name[:80]!r} is not a type")
    return found


def _aux_data(aux) -> Any:
    if aux is None or isinstance(aux, (bool, int, float, str)):
        return aux
    if isinstance(aux, tuple):
        return {"tuple": [_aux_data(a) for a in aux]}
    if isinstance(aux, list):
        return {"list": [_aux_data(a) for a in aux]}
    if isinstance(aux, jax.tree_util.PyTreeDef):
        return {"tree": tree_data(aux)}
    raise TypeError(f"an output tree's node data {type(aux).__name__} has no plain-data form")


def _aux(data) -> Any:
    if not isinstance(data, dict):
        return data
    (kind, value), = data.items()
    if kind == "tuple":
        return tuple(_aux(a) for a in value)
    if kind == "list":
        return [_aux(a) for a in value]
    if kind == "tree":
        return tree_of(value)
    raise ValueError(f"unknown node data {kind[:20]!r}")


def tree_data(treedef) -> Any:
    """A PyTreeDef as plain data (JSON): a leaf is None, a node `[type name, node data, children]`."""
    node = treedef.node_data()
    if node is None:
        return None
    kind, aux = node
    return [_type_name(kind), _aux_data(aux), [tree_data(child) for child in treedef.children()]]


def tree_of(data) -> Any:
    """The PyTreeDef `tree_data` gave (its types looked up, TREE_PACKAGES, never imported)."""
    if data is None:
        return jax.tree.structure(0)
    name, aux, children = data
    return jax.tree_util.PyTreeDef.from_node_data_and_children(
        jax.tree_util.default_registry, (_type_of(name), _aux(aux)), [tree_of(child) for child in children])


def _warn(message: str) -> None:
    warnings.warn(message, CacheWarning, stacklevel=3)


def _load(path: Path, key: str):
    """`(exported, out_tree)` kept at `path` for `key`, or None: missing, or not usable (with a CacheWarning)."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    try:
        if not data.startswith(MAGIC):
            raise ValueError("not a program the lab kept (an older format, or another file)")
        size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "big")
        if size > MAX_HEADER:
            raise ValueError("its header is damaged")
        header = json.loads(data[len(MAGIC) + 8:len(MAGIC) + 8 + size])
        blob = data[len(MAGIC) + 8 + size:]
        if header.get("key") != key:
            raise ValueError("it was kept for another program (its key differs)")
        if header.get("sha256") != hashlib.sha256(blob).hexdigest():
            raise ValueError("it is damaged (its digest differs)")
        return jax.export.deserialize(bytearray(blob)), tree_of(header["out_tree"])
    except Exception as error:  # noqa: BLE001 (anything wrong with the file: made again)
        _warn(f"the kept program {str(path)!r} is not used: {str(error)[:120]}; tracing it again")
        return None


def _save(path: Path, key: str, blob: bytes, out_tree) -> None:
    """Keep `blob` with its key, digest and output tree, whole or not at all (a `.part` file renamed; removed when
    the disk is full)."""
    try:
        header = json.dumps({"key": key, "sha256": hashlib.sha256(blob).hexdigest(), "out_tree": tree_data(out_tree)})
    except (TypeError, ValueError):  # an output tree with node data that is not plain data: not kept
        return
    part = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part.write_bytes(MAGIC + len(header).to_bytes(8, "big") + header.encode() + blob)
        part.replace(path)  # whole or not at all, when processes write the same program
    except OSError as error:
        _warn(f"cannot keep a traced program in {str(path.parent)!r} ({error.strerror or error}); it is traced again next time")
    finally:
        part.unlink(missing_ok=True)


def lower(fn, args: tuple, fingerprint: str | None, donate_argnums: tuple = (), **jit_options) -> Lowered:
    """`jit(fn)(*args)` lowered as a program over the leaves of `args`; `.compile()` it into a `Program`, called
    like `fn` (`donate_argnums` donates every leaf of those arguments).

    With a `fingerprint` (a string that names everything `fn` depends on besides its arguments and the lab's
    source), the program goes through `jax.export` and is kept in, or loaded from, the cache (module doc).
    """
    leaves, in_tree = jax.tree.flatten(args)
    starts = np.cumsum([0, *(len(jax.tree.leaves(a)) for a in args)])  # argument n's leaves: starts[n]:starts[n + 1]
    donated = tuple(i for n in donate_argnums for i in range(starts[n], starts[n + 1]))
    out_trees = []

    def flat(*leaves):
        out, out_tree = jax.tree.flatten(fn(*jax.tree.unflatten(in_tree, leaves)))
        out_trees.append(out_tree)
        return out

    where = _exported_path(fingerprint, leaves, in_tree, jit_options)
    loaded = _load(*where) if where is not None else None
    if loaded is None and where is not None:
        try:
            blob = jax.export.export(jax.jit(flat, **jit_options))(*leaves).serialize()
            _save(*where, blob, out_trees[-1])
            loaded = jax.export.deserialize(blob), out_trees[-1]  # the very program a new process loads
        except Exception:  # noqa: BLE001 (a program jax.export cannot keep: lowered as usual below)
            loaded = None
    if loaded is None:
        return Lowered(jax.jit(flat, donate_argnums=donated, **jit_options).lower(*leaves), out_trees[-1])
    exported, out_tree = loaded
    return Lowered(jax.jit(exported.call, donate_argnums=donated, **jit_options).lower(*leaves), out_tree)


@contextlib.contextmanager
def paused_gc():
    """Python's cycle collector off inside (compile_run): tracing allocates many containers, and the collections they
    set off took 0.25 s of the default run's 3.7 s compile (one seed, 2-core AMD EPYC, 2026-12-06)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Lowered(NamedTuple):
    """A program over the leaves of its arguments, lowered (`lower`), and the tree of its outputs."""

    lowered: Any
    out_tree: Any

    @property
    def out_info(self):
        """The outputs' shapes and dtypes (`jax.ShapeDtypeStruct`s), in the tree of `fn`'s outputs."""
        return jax.tree.unflatten(self.out_tree, self.lowered.out_info)

    def compile(self, options: dict | None = None) -> Program:
        """Compiled with XLA's `options` (e.g. `{"xla_backend_optimization_level": 0}`) over those of XLA_FLAGS."""
        return Program(self.lowered.compile(options), self.out_tree)


class Program:
    """A compiled program over the leaves of its arguments (`lower`), called with pytrees: `program(*args)`."""

    def __init__(self, compiled, out_tree):
        self.compiled, self.out_tree = compiled, out_tree

    def __call__(self, *args):
        return jax.tree.unflatten(self.out_tree, self.compiled(*jax.tree.leaves(args)))

    @property
    def out_info(self):
        return jax.tree.unflatten(self.out_tree, self.compiled.out_info)
