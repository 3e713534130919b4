"""Lowering backends. Each is a plugin registered under the ``axc.backends``
entry-point group (docs/backends.md; the interface is :mod:`axc.backend`);
the built-in ones register the same way."""
