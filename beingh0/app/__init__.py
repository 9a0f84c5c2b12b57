"""The application layer: the main job's stages end to end (``beingh0 demo``) and its HTML report.

Above ``deploy`` (it runs every layer's jobs), below ``benchmark`` and ``cli``.
"""
