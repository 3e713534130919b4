"""Lowering backends. Each is a plugin registered under the ``axc.backends``
entry-point group; the built-in ones arrive with later releases."""
