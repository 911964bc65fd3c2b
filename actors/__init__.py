"""The concrete actors: Run, Instrument, Solver, Twin, Calibrator, Recorder."""
