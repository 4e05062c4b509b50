"""Command-line programs: tm_add, tm_simulate, and later the step programs and tm_workflow."""
