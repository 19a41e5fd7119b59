"""The command line, the top floor: parse flags, call one function, turn user errors into exit 2.

Nothing below imports this package."""
