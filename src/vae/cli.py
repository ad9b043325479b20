"""Command line: ``python -m vae COMMAND``. Run ``python -m vae COMMAND --help`` for each."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import checkpoint, data, dumps, images
from .train import Config, train

# OSError covers a missing, existing, unwritable or wrong-kind path given on the command line
USER_ERRORS = (data.DataError, checkpoint.CheckpointError, ValueError, OSError, FloatingPointError,
               dumps.GraphvizMissing)  # fmt: skip


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
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: 10 on full MNIST, 50 on the 4,167 embedded training digits)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default: %(default)s")
    p.add_argument("--hidden", type=int, default=d.hidden_dim, help="hidden units (default: %(default)s)")
    p.add_argument("--latent", type=int, default=d.latent_dim, help="latent dimensions (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--seed", type=seed, default=d.seed, help="same seed, same data -> identical losses (default: %(default)s)")
    p.add_argument("--protocol", choices=data.PROTOCOLS, default=d.protocol,
                   help="pixel protocol: grayscale intensities in [0,1], binarized (fresh Bernoulli "
                   "draws each epoch) or fixed-binarized (default: %(default)s)")
    p.add_argument("--sampler", choices=("reparameterized", "opaque"), default=d.sampler,
                   help="z = mu + sigma*eps (reparameterized) or a constant sample with no gradient "
                   "path to the encoder (opaque) (default: %(default)s)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=d.dtype, help="default: %(default)s")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder for checkpoints and dumps (default: runs/latest; with "
                   "--resume, the checkpoint's own folder)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue a run from its checkpoint.npz exactly where it stopped, with the "
                   "run's saved settings (data, sizes, lr, seed, protocol); --epochs can raise its "
                   "epoch budget")
    p.add_argument("--dump-graph", metavar="STEPS",
                   help="write the graph of these steps' loss after backward, e.g. '1,100,last' "
                   "(text, JSON and DOT; SVG too when Graphviz is installed)")
    _threads_option(p)
    p.add_argument("--quiet", action="store_true", help="no live progress line")
    p.set_defaults(run=_run_train)


def seed(text: str) -> int:
    """--seed: a non-negative integer (argparse names the option in its error)."""
    value = int(text)  # a ValueError here reads "invalid seed value: 'x'"
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _set_threads(n: int | None) -> None:
    if n is not None:
        import minigrad

        minigrad.set_num_threads(n)


def _run_train(args: argparse.Namespace) -> int:
    if args.resume is not None:
        epochs = args.epochs or 0  # 0: keep the checkpoint's own epoch budget
    else:
        epochs = args.epochs if args.epochs is not None else (50 if args.data == "embedded" else 10)
    config = Config(data=args.data, epochs=epochs, batch_size=args.batch_size, hidden_dim=args.hidden,
                    latent_dim=args.latent, lr=args.lr, seed=args.seed, protocol=args.protocol,
                    sampler=args.sampler, dtype=args.dtype)  # fmt: skip
    if args.out is None:  # a resumed run goes on in its own folder, never over another run
        args.out = args.resume.parent if args.resume is not None else Path("runs") / "latest"
    train(config, args.out, resume=args.resume, dump_graph=args.dump_graph, progress=not args.quiet)
    return 0


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads", type=int,
        help="threads for the C kernels (default: MINIGRAD_NUM_THREADS, else all cores)",
    )


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="test negative ELBO, importance-sampled NLL and active latent units of a checkpoint",
        description="Evaluate a checkpoint on the test set: the negative ELBO (nats per example), "
        "the negative log-likelihood estimated with k importance samples from q(z|x), and the "
        "active units (latent dims j with Var_x[mu_j(x)] > 0.01). Progress goes to stderr.",
    )
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PATH", help="checkpoint.npz written by train")
    p.add_argument("--data", metavar="DIR", help="'embedded' or an MNIST folder (default: the checkpoint's)")
    p.add_argument("--protocol", choices=data.PROTOCOLS, help="pixel protocol (default: the checkpoint's)")
    p.add_argument("-k", type=int, default=1000, help="importance samples per example (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=100, help="examples per importance-sampling batch (default: %(default)s)")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N test examples")
    p.add_argument("--seed", type=seed, default=0, help="seed of the importance samples (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    _threads_option(p)
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from . import evaluate

    report = evaluate.run(args.checkpoint, data_spec=args.data, protocol=args.protocol, k=args.k,
                          batch_size=args.batch_size, limit=args.limit, seed=args.seed,
                          progress=not args.quiet)  # fmt: skip
    print(json.dumps(report, indent=1) if args.json else evaluate.format_report(report))
    return 0


def _add_sample(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sample",
        help="PNG grid of digits decoded from z ~ N(0, I)",
        description="Decode n draws z ~ N(0, I) and write sigmoid(logits) as a grayscale PNG grid "
        f"(at most {images.MAX_PIXELS:,} pixels).",
    )
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PATH")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    p.add_argument("-n", type=int, default=64,
                   help=f"number of samples, at most {images.MAX_SAMPLES:,} (default: %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=seed, default=0, help="seed of the z draws (default: %(default)s)")
    p.add_argument("--scale", type=int, default=2, help="enlarge every pixel this many times (default: %(default)s)")
    _threads_option(p)
    p.set_defaults(run=_run_sample)


def _run_sample(args: argparse.Namespace) -> int:
    from . import evaluate

    _check_scale(args.scale)
    model, _, _ = evaluate.load_model(args.checkpoint)
    pixels = images.grid(images.samples(model, args.n, args.seed), scale=args.scale)
    path = images.write_png(args.out, pixels)
    print(f"wrote {path}: {args.n} samples from {evaluate.describe_model(model)}, {pixels.shape[1]}x{pixels.shape[0]} pixels")
    return 0


def _add_reconstruct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="PNG grid of test digits next to their reconstructions",
        description="Write n test digits, each followed by its reconstruction sigmoid(decoder(mu(x))), "
        "as a grayscale PNG grid (4 pairs per row).",
    )
    p.add_argument("--checkpoint", type=Path, required=True, metavar="PATH")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.png")
    p.add_argument("-n", type=int, default=16, help="number of test digits (default: %(default)s)")
    p.add_argument("--data", metavar="DIR", help="'embedded' or an MNIST folder (default: the checkpoint's)")
    p.add_argument("--protocol", choices=data.PROTOCOLS, help="pixel protocol (default: the checkpoint's)")
    p.add_argument("--scale", type=int, default=2, help="enlarge every pixel this many times (default: %(default)s)")
    _threads_option(p)
    p.set_defaults(run=_run_reconstruct)


def _run_reconstruct(args: argparse.Namespace) -> int:
    from . import evaluate

    _check_scale(args.scale)
    if args.n < 1:
        raise ValueError(f"-n must be a positive integer, got {args.n}")
    model, config, _ = evaluate.load_model(args.checkpoint)
    images.image_shape(model)
    x, _, described, protocol = evaluate.test_inputs(config, args.data, args.protocol, args.n, model.input_dim,
                                                     model.image_shape)  # fmt: skip
    pixels = images.reconstruction_grid(model, x, scale=args.scale)
    path = images.write_png(args.out, pixels)
    print(f"wrote {path}: {len(x)} digits of the {described} (protocol {protocol}), each followed by its reconstruction")
    return 0


def _check_scale(scale: int) -> None:
    if not 1 <= scale <= 16:
        raise ValueError(f"--scale must be between 1 and 16, got {scale}")


def _add_explain(sub: argparse._SubParsersAction) -> None:
    from .explain import DEFAULT_BETA

    p = sub.add_parser(
        "explain",
        help="the learner's 6-4-2 diagram with real numbers: how mu, sigma, z and the gradients are computed",
        description="Train the 6-4-2 'diagram' VAE for a few seconds on 6 features per digit (the mean "
        "ink, in [0,1], of each cell of a 2x3 grid over the 28x28 image), or load one, then print "
        "for one test digit: x, a = relu(W_h x + b_h), mu and logvar (each its own row of weights), "
        "sigma, eps, z = mu + sigma*eps, and the gradients reaching W_mu / W_logvar from the "
        "reconstruction and KL terms, next to what an opaque (non-reparameterized) sampler gives.",
    )
    p.add_argument("--checkpoint", type=Path, metavar="PATH", help="a checkpoint of a 6-4-2 model (e.g. from --save)")
    p.add_argument("--steps", type=int, default=300, help="Adam steps of the brief training (default: %(default)s)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the initialization, batches and eps (default: %(default)s)")
    p.add_argument("--beta", type=float, default=DEFAULT_BETA,
                   help="KL weight of the brief training; 1 is the plain ELBO, under which these 6 features "
                   "end in posterior collapse (default: %(default)s)")  # fmt: skip
    p.add_argument("--index", type=int, default=0, help="which test digit to push through (default: %(default)s)")
    p.add_argument("--save", type=Path, metavar="PATH", help="also write the trained 6-4-2 model as a checkpoint")
    _threads_option(p)
    p.set_defaults(run=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from . import explain

    sys.stdout.write(explain.run(args.checkpoint, steps=args.steps, seed=args.seed, index=args.index,
                                 save=args.save, beta=args.beta))  # fmt: skip
    return 0


def _add_gradcheck(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gradcheck",
        help="float64 finite-difference check of the negative ELBO's gradient w.r.t. every parameter",
        description="Build a small float64 VAE, take a small batch of real digits (averaged down to "
        "--input values) and one fixed eps draw, and compare backward() with central differences "
        "for every element of every parameter. Exits 1 if any parameter fails.",
    )
    p.add_argument("--batch", type=int, default=4, help="examples (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=5, help="hidden units (default: %(default)s)")
    p.add_argument("--latent", type=int, default=3, help="latent dimensions (default: %(default)s)")
    p.add_argument("--input", type=int, default=8, help="input dimensions (default: %(default)s)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the weights and eps (default: %(default)s)")
    _threads_option(p)
    p.set_defaults(run=_run_gradcheck)


def _run_gradcheck(args: argparse.Namespace) -> int:
    from . import checks

    rows = checks.gradcheck_vae(args.batch, args.hidden, args.latent, args.input, seed=args.seed)
    print(f"gradient check: negative ELBO of a float64 VAE {args.input}-{args.hidden}-{args.latent} on "
          f"{args.batch} examples, fixed eps")  # fmt: skip
    print(checks.format_table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


def _add_dump(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dump",
        help="show, render or compare graph dumps written by train --dump-graph",
        description="Read the DIR/graphs/stepNNNNNN.json (and .dot) files that `train --dump-graph` writes.",
    )
    dsub = p.add_subparsers(dest="dump_command", metavar="ACTION", required=True)
    show = dsub.add_parser("show", help="print a .json dump as text", description="Print a saved .json dump as text.")
    show.add_argument("file", type=Path, metavar="FILE.json")
    show.set_defaults(run=lambda a: _print(dumps.show(a.file)))
    render = dsub.add_parser("render", help="render a dump to SVG with Graphviz",
                             description="Render a .json or .dot dump to SVG (needs Graphviz's `dot`).")  # fmt: skip
    render.add_argument("file", type=Path, metavar="FILE.json|FILE.dot")
    render.add_argument("--out", type=Path, metavar="FILE.svg", help="default: the input with .svg")
    render.set_defaults(run=lambda a: _print(f"wrote {dumps.render(a.file, a.out)}"))
    diff = dsub.add_parser("diff", help="compare two .json dumps (e.g. step 1 and the last step)",
                           description="Compare two saved .json dumps of the same graph: structure, values, gradient norms.")  # fmt: skip
    diff.add_argument("a", type=Path, metavar="A.json")
    diff.add_argument("b", type=Path, metavar="B.json")
    diff.set_defaults(run=lambda a: _print(dumps.diff(a.a, a.b)))


def _print(text: str) -> int:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m vae",
        description="A variational autoencoder on minigrad, with the reparameterization z = mu + "
        "sigma * eps made explicit in the graph.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_train(sub)
    _add_eval(sub)
    _add_sample(sub)
    _add_reconstruct(sub)
    _add_explain(sub)
    _add_gradcheck(sub)
    _add_dump(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.time()
    try:
        _set_threads(getattr(args, "threads", None))  # every compute command takes --threads
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted{_after_interrupt(args, started)}", file=sys.stderr)
        return 130


def _after_interrupt(args: argparse.Namespace, started: float) -> str:
    """What an interrupted train run left: checkpoints are written whole after each epoch."""
    if getattr(args, "run", None) is not _run_train or args.out is None:
        return ""
    path = Path(args.out) / "checkpoint.npz"
    if path.exists() and path.stat().st_mtime >= started:
        return f"; {path} holds this run's last completed epoch (--resume {path} continues)"
    if path.exists():
        return f"; no epoch of this run completed, {path} is as it was before"
    return f"; no epoch completed, so no checkpoint was written to {args.out}"
