"""Foundation shared by every layer: typed errors, boundary checks (shapes, choices, user files, safetensors),
the user's settings file, atomic files and versioned formats, rotations and OpenCV cameras."""
