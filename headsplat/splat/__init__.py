"""splat"""
