"""`python -m workers [--burst]`: a delivery worker, the same as `flask --app wsgi worker`."""

import sys

from engine import create_app
from engine.cli import run_worker


def main() -> None:
    with create_app().app_context():
        run_worker(burst="--burst" in sys.argv[1:])


if __name__ == "__main__":
    main()
