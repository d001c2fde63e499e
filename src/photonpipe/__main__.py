"""``python -m photonpipe``: the same as the ``photonpipe`` command."""

from photonpipe.cli.main import entry_point

entry_point()
