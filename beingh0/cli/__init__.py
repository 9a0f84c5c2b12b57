"""The ``beingh0`` command: ``beingh0 <verb> ...``; see ``main.py``."""
