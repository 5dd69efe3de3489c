"""Command-line interface: argument parsing and printing over :mod:`headsplat.api`."""
