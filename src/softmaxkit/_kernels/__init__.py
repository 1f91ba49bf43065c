"""softmaxkit's compiled kernels (private: use the functions of ``softmaxkit``)."""
