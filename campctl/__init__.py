"""campctl: marketing campaigns, execution plans and journeys from YAML and one SQLite file."""

__version__ = "0.1.0"
