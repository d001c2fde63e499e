"""``photonpipe serve``: the light-curve archive and the stellar-session workbench in a browser.

Thin like :mod:`photonpipe.cli`: pages and actions call the applications' APIs
(:mod:`photonpipe.lightcurves.catalog`, :class:`photonpipe.stellar.session.Session`). Needs the
``web`` extra (Starlette, uvicorn, Bokeh, Jinja2); plots load Bokeh's JavaScript from the
installed package, never from the network.
"""

from photonpipe.errors import require_extra

require_extra("web", "starlette", "uvicorn", "bokeh", "jinja2", needed_by=__name__)
