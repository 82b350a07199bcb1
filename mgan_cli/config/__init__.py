"""What a run is set to: presets, per-family defaults, tasks and the checks made before anything runs."""
