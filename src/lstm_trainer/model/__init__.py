"""The recurrent forecaster, its output heads, and the one inference path."""
