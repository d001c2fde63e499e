"""Command groups shared by several applications' command modules.

``photonpipe simulate`` has one sub-command per instrument, each added by the application that
owns the simulator; the group is shown only once at least one simulator is registered.
"""

from __future__ import annotations

import click


@click.group("simulate")
def simulate_group() -> None:
    """Write simulated instrument data in the real file formats, with a truth file."""
