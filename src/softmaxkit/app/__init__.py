"""softmaxkit's application layer: the ``softmaxkit`` command line and its workflows.

========================  ====================================================
``app.cli``               the parser, ``main`` and the one-line error handling
``app.train``             the train workflow, a plain function
``app.predict``           the predict workflow
``app.explain``           ``smk.explain`` / ``smk.explain_sigmoid``: every step
``app.plots``             bar charts, training curves, confusion matrices
``app.bench``             ``softmaxkit bench``: finds and runs ``benchmarks/``
``app.tables``            the text and Markdown table printer
========================  ====================================================

Layering: ``app`` sits on top of the library (docs/architecture.md); nothing below
imports from it. Files (atomic writes, never over an input, bounded ``.npz``
reading) live in ``softmaxkit._io`` and the progress bar in ``softmaxkit._progress``,
shared services the estimator and ``datasets`` use too. Importing this package
imports nothing else.
"""
