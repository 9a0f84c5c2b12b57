"""beingh0: an open, fast, tested implementation of the Being-H0 dexterous VLA.

A dependency stack, bottom to top (docs/architecture.md; tests/test_layers.py enforces it):
``core`` → ``ops`` → ``mano`` → ``motion`` → ``data`` → (``align``, ``tokenizer``) → ``train`` →
``vla`` → ``policy`` → ``deploy``, with ``benchmark`` and ``cli`` (the ``beingh0`` command) on top.
This root module holds only the version and imports nothing of the package.
"""
__version__ = "0.1.0"
