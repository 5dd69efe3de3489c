"""Avatars: create (fit Gaussians bound to a rig to photos), animate (retarget a driver), save and load."""
