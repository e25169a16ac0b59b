"""irbis: census snow leopards with camera traps.

Ingest memory cards, detect and identify animals, estimate population size.
"""

__version__ = "0.1.0"
