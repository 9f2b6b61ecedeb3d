"""The package version, in one place (read by the package root and by stores that label uploads)."""

__version__ = "0.1.0"
