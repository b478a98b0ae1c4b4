"""`python -m workers [--burst]`: a delivery worker, the same as `flask --app wsgi worker`."""

import sys

from engine.cli import run_worker
from engine.runtime import current_runtime
from engine.startup import one_line_errors, serving_app


def main() -> None:
    # The worker checks the schema itself (in production), as `flask --app wsgi worker` does.
    app = serving_app(serving=False)
    with app.app_context(), one_line_errors(current_runtime()):
        run_worker(burst="--burst" in sys.argv[1:])


if __name__ == "__main__":
    main()
