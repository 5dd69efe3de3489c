"""Face tracking: fit the head rig's identity, camera, pose and expression to landmarks over frames,
smoothed in time, saved as a Tracking (``.track``)."""

from headsplat.track.fit import FitConfig
from headsplat.track.tracker import MissingFacesWarning, track_source
from headsplat.track.tracking import Tracking

__all__ = ["FitConfig", "MissingFacesWarning", "Tracking", "track_source"]
