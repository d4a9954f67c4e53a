"""`python -m app.cli`: the same as the `smsdest` command."""

from app.cli import main

main()
