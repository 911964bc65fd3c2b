"""Instrument drivers, the simulated potentiostat server and safety interlocks."""
