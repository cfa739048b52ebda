"""The YAML menu DSL and its sans-IO engine."""
