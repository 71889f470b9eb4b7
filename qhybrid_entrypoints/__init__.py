"""Entry points, the top floor: the ``qhybrid`` command line (and, beside it, the HTTP API).

Each parses and validates its input, reads settings once, calls the application layer
(:mod:`qhybrid_usecases`) or a flow, and maps qhybrid's errors to what its users expect: exit
codes here (:data:`qhybrid_entrypoints.exits.EXIT_CODES`).
"""

__all__: list[str] = []
