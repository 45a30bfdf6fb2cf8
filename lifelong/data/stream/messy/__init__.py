"""The ``messy`` built-in stream: six datasets shaped like the Adapt-∞ paper's stream.

``config`` (sizes and rates), ``skills`` (contents and wordings per task),
``compose`` (the datasets and their defects, in memory), ``prepare`` (files),
``cards`` (data cards). ``lifelong.data.stream.prepare_stream`` writes it when
``StreamConfig.stream`` is ``messy``.
"""
