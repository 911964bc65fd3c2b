"""Twin logic: lockstep prediction, residuals, drift, online calibration and experiment design."""
