# The compiled modules of this package are private; see _softmax.pyi and friends.
