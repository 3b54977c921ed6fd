"""Firmware of the soft-core engine (iCE40 UP5K): C sources and their build."""
