"""beingh0: an open, fast, tested implementation of the Being-H0 dexterous VLA.

Ground floor: ``beingh0.ops`` (kernels behind one Python face), ``beingh0.mano`` (hand model).
"""
__version__ = "0.1.0"
