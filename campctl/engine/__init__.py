"""The engine: schedules, windows, runs, plans, scenarios, audience building, the tick."""
