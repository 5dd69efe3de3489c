"""The FLAME head model, used when the user supplies the official model file (never needed by default)."""
