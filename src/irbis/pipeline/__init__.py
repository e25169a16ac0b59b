"""Runs stages over batches of rows: detection now; a local pool or a Ray cluster later."""
