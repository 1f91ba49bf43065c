"""softmaxkit's application layer: the ``softmaxkit`` command line and its workflows.

(Placeholder from the sampling branch: the command-line helper's version of this
package replaces it; ``app.sample_cmd`` is the ``softmaxkit sample`` command.)
"""
