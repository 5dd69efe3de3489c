"""The FLAME head model, used when the user supplies the official model file (never needed by default):
the safe loader, the linear blend skinning model, the MediaPipe embedding and FLAME as a head rig."""
