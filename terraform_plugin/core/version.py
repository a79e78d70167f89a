"""The plugin's version; metadata.txt carries the same string (a test keeps them equal)."""

VERSION = "0.1.0"
