"""Command line: ``python -m vae COMMAND``. Run ``python -m vae COMMAND --help`` for each."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import checkpoint, data
from .train import Config, train

USER_ERRORS = (data.DataError, checkpoint.CheckpointError, ValueError, FileNotFoundError,
               NotADirectoryError, FloatingPointError)  # fmt: skip


def _add_train(sub: argparse._SubParsersAction) -> None:
    d = Config()
    p = sub.add_parser(
        "train",
        help="train a VAE (default: the embedded 5,000 digits, under a minute)",
        description="Train a VAE with Adam; writes DIR/checkpoint.npz after every epoch, "
        "DIR/history.json, and graph dumps of chosen steps under DIR/graphs/.",
    )
    p.add_argument("--data", default=d.data, metavar="DIR",
                   help="'embedded' (the 5,000 digits shipped with the package) or a folder with "
                   "the MNIST IDX files train-images-idx3-ubyte[.gz] etc. (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 10 on full MNIST, 15 on embedded)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--hidden", type=int, default=d.hidden_dim, help="hidden units (default: %(default)s)")
    p.add_argument("--latent", type=int, default=d.latent_dim, help="latent dimensions (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="same seed, same data -> identical losses (default: %(default)s)")
    p.add_argument("--protocol", choices=data.PROTOCOLS, default=d.protocol,
                   help="pixel protocol: grayscale intensities in [0,1], binarized (fresh Bernoulli "
                   "draws each epoch) or fixed-binarized (default: %(default)s)")
    p.add_argument("--sampler", choices=("reparameterized", "opaque"), default=d.sampler,
                   help="z = mu + sigma*eps (reparameterized) or a constant sample with no gradient "
                   "path to the encoder (opaque) (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype, help="default: %(default)s")
    p.add_argument("--out", type=Path, default=Path("runs") / "latest", metavar="DIR",
                   help="output folder for checkpoints and dumps (default: %(default)s)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz exactly where it stopped")
    p.add_argument("--dump-graph", metavar="STEPS",
                   help="write the graph of these steps' loss after backward, e.g. '1,100,last' "
                   "(text, JSON and DOT; SVG too when Graphviz is installed)")
    p.add_argument("--threads", type=int, help="threads for the C kernels (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.set_defaults(run=_run_train)


def _set_threads(n: int | None) -> None:
    if n is not None:
        import minigrad

        minigrad.set_num_threads(n)


def _run_train(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    epochs = args.epochs if args.epochs is not None else (15 if args.data == "embedded" else 10)
    config = Config(data=args.data, epochs=epochs, batch_size=args.batch_size, hidden_dim=args.hidden,
                    latent_dim=args.latent, lr=args.lr, seed=args.seed, protocol=args.protocol,
                    sampler=args.sampler, dtype=args.dtype)  # fmt: skip
    train(config, args.out, resume=args.resume, dump_graph=args.dump_graph, progress=not args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vae",
        description="A variational autoencoder on minigrad, with the reparameterization z = mu + "
        "sigma * eps made explicit in the graph.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last completed epoch's checkpoint is intact", file=sys.stderr)
        return 130
