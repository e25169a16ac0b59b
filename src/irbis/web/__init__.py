"""The review web app: FastAPI JSON API under ``/api`` and server-rendered pages.

``create_app(project)`` builds the app for one open project; ``irbis serve``
runs it with uvicorn. Every asset is served by the app itself (field offices
are offline), including Leaflet from the ``xstatic-leaflet`` package.
"""

from irbis.web.app import create_app

__all__ = ["create_app"]
