"""``python -m xtracker_server`` and the ``xtracker`` command (pyproject.toml): the collector
set for a short process first (xtracker_server/_gc.py), then the command line (cli/)."""

from xtracker_server import _gc


def main() -> None:
    _gc.for_a_moment()  # before Typer and the commands are imported
    try:
        from xtracker_server.cli import main as command_line

        command_line()
    finally:  # also on SystemExit, which is how Typer ends every command
        _gc.at_exit()


if __name__ == "__main__":
    main()
