"""Instrument drivers: each a plain class meeting :class:`hal.driver.Driver`.

- :mod:`hal.drivers.scpi_potentiostat`: Galvana's SCPI dialect over VISA (the
  simulated potentiostat, ``galvana instrument serve``);
- :mod:`hal.drivers.keithley2450`: a Keithley 2450 SourceMeter as a two-electrode
  potentiostat, over VISA;
- :mod:`hal.drivers.methodscript`: PalmSens instruments speaking MethodSCRIPT over a
  serial line;
- :mod:`hal.drivers.registry`: the drivers by name (``scpi``, ``keithley2450``,
  ``methodscript``, and plug-ins) with their connection options.
"""
