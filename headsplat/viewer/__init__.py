"""The browser viewer (interface layer): ``headsplat view``."""
