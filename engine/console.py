"""The `fluister` command that `pip install .` installs: the same commands as
`flask --app wsgi` in a checkout, from any directory."""

from __future__ import annotations

from flask.cli import FlaskGroup


def main() -> None:
    from engine import create_app

    FlaskGroup(
        name="fluister",
        create_app=create_app,
        help="Fluister, a tell-a-friend campaign engine: `fluister db upgrade`, `fluister worker`, `fluister run`, ...",
    )()


if __name__ == "__main__":
    main()
