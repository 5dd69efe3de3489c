"""Foundation: errors, validation, atomic files, rotations and cameras shared by every layer."""
