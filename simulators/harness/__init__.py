"""What drives and judges a simulated deployment: the simulation, the Hypothesis state
machine, the invariants, and the timeline actions both share."""
