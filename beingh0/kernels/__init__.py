"""Triton kernels. Installed as ``beingh0.kernels`` (never as a top-level ``kernels`` module); reach
them through ``beingh0.ops``, which picks a backend and validates inputs first."""
