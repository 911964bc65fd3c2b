"""Instruments: the driver contract, drivers, the simulated potentiostat, safety interlocks.

- :mod:`hal.driver`: the :class:`~hal.driver.Driver` protocol every driver meets,
  and what it trades in (:class:`~hal.driver.Samples`, :class:`~hal.driver.Settings`,
  :class:`~hal.driver.Capabilities`, :class:`~hal.driver.LatencyProfile`, flags);
- the waveforms drivers program are the shared vocabulary of :mod:`runtime.waveforms`
  (CV, LSV, CA, SWV, piecewise: what a physics scenario simulates is what is applied);
- :mod:`hal.safety`: per-instrument limits and the :class:`~hal.safety.Interlock`
  that checks waveforms before they are programmed and every streamed batch;
- :mod:`hal.drivers`: Galvana's SCPI dialect over VISA, the Keithley 2450, PalmSens
  MethodSCRIPT over a serial line;
- :mod:`hal.methodscript`: MethodSCRIPT scripts out, data packets in;
- :mod:`hal.sim`: the simulated potentiostat (``galvana instrument serve``) on a real
  socket, and a MethodSCRIPT device on a real pty, with a hidden true cell.

``hal`` depends on nothing of Galvana's but ``runtime`` (messages, codec, errors),
with one exception: :mod:`hal.sim.physics_model` imports ``physics``, because the
simulated world's truth is the physics engine. The instrument actor that owns a
driver lives in :mod:`actors.instrument`.
"""
