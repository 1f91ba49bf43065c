"""softmaxkit's application layer: the ``softmaxkit`` command line and its workflows.

========================  ====================================================
``app.cli``               the parser, ``main`` and the one-line error handling
``app.train``             the train workflow, a plain function
``app.predict``           the predict workflow
``app.explain``           ``smk.explain`` / ``smk.explain_sigmoid``: every step
``app.plots``             bar charts, training curves, confusion matrices
``app.bench``             ``softmaxkit bench``: finds and runs ``benchmarks/``
``app.progress``          the progress bar of long fits
``app.io``                atomic writes, never over an input, bounded ``.npz``
``app.tables``            the text and Markdown table printer
========================  ====================================================

Layering: ``app`` sits on top of the library and is imported lazily (the command
line, ``smk.explain``). ``app.io``, ``app.progress`` and ``app.tables`` import nothing
from softmaxkit, so lower layers (``datasets``, the estimator) may use them without
an import cycle. Importing this package imports nothing else.
"""
