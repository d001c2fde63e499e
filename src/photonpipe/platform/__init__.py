"""The runtime every photonpipe application uses.

Settings (:mod:`~photonpipe.platform.config`), the database and its migrations
(:mod:`~photonpipe.platform.db`), the archive filesystem (:mod:`~photonpipe.platform.archive`),
the resumable work-unit ledger and executor (:mod:`~photonpipe.platform.ledger`,
:mod:`~photonpipe.platform.executor`), logging (:mod:`~photonpipe.platform.logs`) and quicklook
plots (:mod:`~photonpipe.platform.plots`). Nothing here imports an application.
"""
