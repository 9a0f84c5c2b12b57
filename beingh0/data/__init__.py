"""UniHand data: unified episodes, sources, instruction samples, shards and loaders.

See :mod:`beingh0.data.episode` for the schema and its on-disk form.
"""
from .episode import (
    SCHEMA_VERSION,
    CameraTrack,
    Episode,
    EpisodeFormatError,
    Frames,
    HandTrack,
    TextAnnotations,
    TextSegment,
    load_episode,
    save_episode,
)
from .extras import MissingExtraError, require

__all__ = [
    "SCHEMA_VERSION", "CameraTrack", "Episode", "EpisodeFormatError", "Frames", "HandTrack",
    "TextAnnotations", "TextSegment", "load_episode", "save_episode", "require", "MissingExtraError",
]
