"""Simulation engines, kinetics, waveforms, analytic references and the scenario schema."""
