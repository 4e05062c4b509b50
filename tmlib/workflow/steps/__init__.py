"""The built-in steps.

Each step is one module: its class (arguments, batches, run and collect) and
its command line (``python -m tmlib.workflow.steps.<name>`` or the console
script ``<name>``). Importing this package imports none of them:
:func:`tmlib.workflow.step.get_step` imports a step's module when the step is
first asked for (see :data:`tmlib.workflow.step.BUILTIN_STEPS`), so that a
step's command line loads only its own step.
"""
