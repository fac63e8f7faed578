"""EGG and the lab side by side on one machine: games/s of the basic reconstruction game's training pass.

The config of ../shared/science/egg.md section 4: K=4 attributes x V=4 values, GRU sender and
receiver, hidden 128, embedding 32, vocabulary 10, max_len 5, batch 512, REINFORCE, Adam 1e-3,
sender entropy 0.01. EGG runs its own `egg.zoo.basic_games.play` unchanged (10,240 training objects
drawn uniformly with replacement, all 256 for validation, DataLoader workers as play.py has them,
torch threads = cores), with `Trainer.train_epoch` wrapped in a timer: an epoch's games/s is 10,240
over its training pass (validation excluded). The lab runs the same population of one (and of 8)
as benchmarks/throughput.py does: bare optimizer steps, 20 steps per timed call (LAB_CALLS). Each side is a
fresh process per round, the two alternate, and each round's figure is the median of its epochs
(EGG: after the first) or calls (the lab: after the first).

EGG is not a dependency of the lab: give its source (`git clone https://github.com/facebookresearch/EGG`; the
folder that holds `egg/`) and a Python that has torch, numpy, scipy, editdistance, rich and wandb
(`python -m venv egg-venv && egg-venv/bin/pip install torch==2.13.0 numpy scipy editdistance rich wandb`).

    python benchmarks/egg.py --egg-src EGG_CHECKOUT --egg-python VENV/bin/python [--rounds 3] [--out FILE]

Writes `benchmarks/results/egg-<machine>.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 20  # of 20 steps each (10,240 games / batch 512)
LAB_CALLS = {1: 20, 8: 6}  # timed calls of 20 steps, per population

EGG_TIMED = """
import json, sys, time
from egg.core import trainers
from egg.zoo.basic_games import play
rates = []
train_epoch = trainers.Trainer.train_epoch
def timed(self):
    start = time.perf_counter()
    out = train_epoch(self)
    rates.append(len(self.train_data.dataset) / (time.perf_counter() - start))
    return out
trainers.Trainer.train_epoch = timed
play.main(sys.argv[1:])
print(json.dumps(rates))
"""

LAB_TIMED = """
import json, sys
sys.path.insert(0, "benchmarks")
from throughput import games_per_second
from lab import config
print(json.dumps(games_per_second(config.load(), int(sys.argv[1]), 20, repeats=int(sys.argv[2]))["games_per_second_each"]))
"""


def egg_data(folder: Path, n_train: int = 10_240, k: int = 4, v: int = 4) -> tuple[Path, Path]:
    """EGG's data files (one object per line, space-separated values): n_train objects drawn uniformly with
    replacement (numpy's legacy generator, seed 0), and every object once for validation."""
    objects = np.array(list(itertools.product(range(v), repeat=k)))
    np.random.seed(0)
    train, valid = folder / "train.txt", folder / "valid.txt"
    for path, rows in ((train, objects[np.random.randint(0, len(objects), size=n_train)]), (valid, objects)):
        path.write_text("".join(" ".join(map(str, row)) + "\n" for row in rows))
    return train, valid


def egg_args(train: Path, valid: Path, epochs: int) -> list[str]:
    return ["--mode", "rf", "--train_data", str(train), "--validation_data", str(valid), "--n_attributes", "4",
            "--n_values", "4", "--n_epochs", str(epochs), "--batch_size", "512", "--validation_batch_size", "256",
            "--max_len", "5", "--vocab_size", "10", "--sender_hidden", "128", "--receiver_hidden", "128",
            "--sender_embedding", "32", "--receiver_embedding", "32", "--sender_cell", "gru", "--receiver_cell", "gru",
            "--lr", "0.001", "--sender_entropy_coeff", "0.01", "--random_seed", "1", "--no_cuda"]


def last_json(args: list[str], **kwargs) -> list[float]:
    out = subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--egg-src", required=True, type=Path, help="an EGG checkout (the folder holding egg/)")
    parser.add_argument("--egg-python", required=True, help="a Python with torch and EGG's few requirements")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput import machine, machine_slug

    cores = str(os.cpu_count())
    egg_env = {**os.environ, "PYTHONPATH": str(args.egg_src.resolve()), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": cores}
    data = Path(tempfile.mkdtemp(prefix="egg-data-"))
    train, valid = egg_data(data)
    torch_version = subprocess.run([args.egg_python, "-c", "import torch; print(torch.__version__)"], check=True,
                                   capture_output=True, text=True).stdout.strip()
    rounds = []
    for i in range(args.rounds):
        egg = last_json([args.egg_python, "-c", EGG_TIMED, *egg_args(train, valid, EPOCHS)], env=egg_env, cwd=data)
        lab = {p: last_json([sys.executable, "-c", LAB_TIMED, str(p), str(calls)], cwd=ROOT) for p, calls in LAB_CALLS.items()}
        row = dict(egg=statistics.median(egg[1:]), lab_1_seed=statistics.median(lab[1][1:]),
                   lab_8_seeds=statistics.median(lab[8][1:]))
        rounds.append(row)
        print(f"round {i + 1}: EGG {row['egg']:.0f} games/s, the lab {row['lab_1_seed']:.0f} with one seed "
              f"(x{row['lab_1_seed'] / row['egg']:.2f}), {row['lab_8_seeds']:.0f} in total with 8 "
              f"(x{row['lab_8_seeds'] / row['egg']:.2f})", flush=True)
    ratios = {k: [r[k] / r["egg"] for r in rounds] for k in ("lab_1_seed", "lab_8_seeds")}
    info = machine()
    result = dict(machine=info, date=time.strftime("%Y-%m-%d"), torch=torch_version, epochs=EPOCHS, rounds=rounds,
                  ratio_to_egg=ratios, ratio_to_egg_median={k: statistics.median(v) for k, v in ratios.items()})
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"egg-{machine_slug(info)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"median ratio: one seed x{result['ratio_to_egg_median']['lab_1_seed']:.2f} EGG, "
          f"8 seeds x{result['ratio_to_egg_median']['lab_8_seeds']:.2f}; wrote {out}")


if __name__ == "__main__":
    main()
