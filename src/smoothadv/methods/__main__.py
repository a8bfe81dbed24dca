"""``python -m smoothadv.methods``: print the table of every method's declared options (the
one in docs/training.md)."""

from .registry import options_markdown

print(options_markdown(), end="")
