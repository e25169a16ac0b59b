"""Storage: the project folder, its database schema and migrations, the blob store."""

from irbis.store.project import Project, Settings

__all__ = ["Project", "Settings"]
