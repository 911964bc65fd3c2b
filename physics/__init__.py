"""Simulation engines, mechanisms, kinetics, waveforms, analytic references and the scenario schema."""
