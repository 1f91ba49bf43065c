"""The softmax explorer: ``softmaxkit explore`` serves :func:`create_app` with uvicorn.

Needs the ``explore`` extra (Starlette and uvicorn): ``pip install softmaxkit[explore]``.
"""
from .server import create_app

__all__ = ["create_app"]
