"""Seconds until `--help` answers, for the `gemdiff` console and every app.

    python benchmarks/startup.py [--repeats 5]

Runs each command ``--repeats`` times in a fresh process (interleaved, so a busy minute hits
every command alike) and prints the median and the worst wall time, with the time of a bare
``python -c pass`` as the floor. Also says whether torch was imported on the way.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

APPS = ["train", "sample", "perturb", "evaluate", "screen", "subset", "core", "enrich",
        "download"]


def commands() -> dict[str, list[str]]:
    console = shutil.which("gemdiff")
    out = {"python -c pass": [sys.executable, "-c", "pass"],
           "gemdiff --help": [console, "--help"] if console else
           [sys.executable, "-m", "gemdiff", "--help"]}
    for app in APPS:
        out[f"python -m gemdiff.{app} --help"] = [sys.executable, "-m", f"gemdiff.{app}",
                                                  "--help"]
    return out


def imports_torch(app: str) -> bool:
    code = f"import sys, gemdiff.{app}; print('torch' in sys.modules)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.strip() == "True"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cmds = commands()
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for _ in range(args.repeats):
        for name, cmd in cmds.items():
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            times[name].append(time.perf_counter() - t0)
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr}")
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each (median / worst, s)")
    for name, t in times.items():
        app = name.split("gemdiff.")[-1].split()[0] if "gemdiff." in name else None
        torch = "" if app is None else ("  imports torch" if imports_torch(app) else "")
        print(f"{name:40s} {statistics.median(t):5.2f} / {max(t):5.2f}{torch}")


if __name__ == "__main__":
    main()
