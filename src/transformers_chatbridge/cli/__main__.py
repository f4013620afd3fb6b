"""`python -m transformers_chatbridge.cli ...`, as the `chatbridge` command."""

from . import main

main()
