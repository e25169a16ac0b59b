"""Ingest memory cards: hash, read metadata, match deployments, fix clocks, group bursts.

The pure pieces (metadata readers, clock arithmetic, grouping, registry CSV
readers) know nothing of the database; :mod:`irbis.ingest.runner` ties them to
a project.
"""
