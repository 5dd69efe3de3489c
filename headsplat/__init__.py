"""headsplat: animatable 3D Gaussian head avatars from photos and videos.

The public entry points are plain functions in :mod:`headsplat.api`; the CLI is a thin layer over them.
"""

__version__ = "0.1.0"
