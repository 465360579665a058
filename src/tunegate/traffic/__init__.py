"""Live traffic after the gate: the request log ``tunegate serve`` writes (``log``), the shadow report with its
always-valid test (``shadow``), and the drift of the served inputs (``drift``)."""
