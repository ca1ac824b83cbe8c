"""One module per ``aegen`` subcommand; each exposes ``add_parser(subparsers)``."""
