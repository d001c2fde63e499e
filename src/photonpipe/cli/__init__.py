"""The ``photonpipe`` command: parse, call the API, print. No science lives here."""
