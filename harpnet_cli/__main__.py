"""``python -m harpnet_cli`` runs the command-line interface."""

from harpnet_cli.cli import main

if __name__ == "__main__":
    main()
