"""Avatars: create (fit Gaussians bound to a rig to photos or view sets), animate (retarget a driver and render),
compositing onto the driver's frames, view sets, and the versioned avatar folder's save and load."""
