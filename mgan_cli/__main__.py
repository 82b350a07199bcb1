"""``python -m mgan_cli`` runs the command line."""

from mgan_cli.cli import main

if __name__ == "__main__":
    main()
