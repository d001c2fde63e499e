"""``photonpipe serve``: the light-curve archive and the stellar-session workbench in a browser.

Thin like :mod:`photonpipe.cli`: pages and actions call the applications' APIs
(:mod:`photonpipe.lightcurves.catalog`, :class:`photonpipe.stellar.session.Session`,
:mod:`photonpipe.stellar.analysis`). Starlette, uvicorn, Bokeh and Jinja2 are core
dependencies; plots load Bokeh's JavaScript from the installed package, never from the network.
"""
