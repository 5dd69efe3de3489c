"""The browser viewer (interface layer): ``headsplat view``, an avatar with sliders for its controls or
played by a driver."""
