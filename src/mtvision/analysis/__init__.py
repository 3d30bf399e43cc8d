"""analysis/: compare, Δm, efficiency, affinity — judges models trained by the engine."""
