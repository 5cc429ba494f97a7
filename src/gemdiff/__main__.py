"""The ``gemdiff`` command: ``gemdiff <subcommand> [Hydra overrides or options]``.

    gemdiff train experiment=breast_16 trainer.max_steps=2000
    gemdiff download gemdiff_example --data-dir ./data
    gemdiff train --help
"""

from __future__ import annotations

import sys

SUBCOMMANDS = {
    "train": "train a class-conditional diffusion model (Hydra app: overrides follow)",
    "sample": "generate synthetic expression per class from a checkpoint (augmentation)",
    "perturb": "carry samples of one class to another and score the genes that move",
    "evaluate": "score synthetic or perturbed expression from any generator against real data",
    "screen": "score gene-set subsets by how well they separate the classes (UMAP silhouette)",
    "subset": "train and perturb one screened subset (a job of the core-gene sweep)",
    "core": "sweep a model over the screened subsets and call the core genes",
    "enrich": "test a gene list (core genes) for over-representation in gene-set libraries",
    "download": "fetch a public dataset into the data folder and verify its checksums",
}


def _usage() -> str:
    lines = ["usage: gemdiff <subcommand> [args...]", "", "subcommands:"]
    lines += [f"  {name:10s} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "`gemdiff <subcommand> --help` describes each one."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd not in SUBCOMMANDS:
        print(f"gemdiff: error: unknown subcommand {cmd!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    import importlib

    if cmd == "download":  # an argparse app
        return importlib.import_module("gemdiff.download").main(rest)

    app = importlib.import_module(f"gemdiff.{cmd}").main
    sys.argv = [f"gemdiff {cmd}", *rest]  # Hydra parses sys.argv
    app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
