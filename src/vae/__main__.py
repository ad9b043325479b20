"""Entry point of `python -m vae` and of the `vae` command."""

import sys


def run() -> int:
    try:
        from .cli import main
    except (ValueError, ImportError) as exc:  # minigrad refused its setup (MINIGRAD_* variables)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return main()


if __name__ == "__main__":
    sys.exit(run())
