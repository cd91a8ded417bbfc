"""Background task kinds named outside the code that runs them.

A module of its own so the API can start a recover without importing the delivery code
that carries it out (``delivery.maintenance``: the delivery service and its HTTP client).
"""

RECOVER = "endpoint.recover"
