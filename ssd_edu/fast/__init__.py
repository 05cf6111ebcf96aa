"""The fast layer; see docs/design.md."""
