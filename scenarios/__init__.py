"""Named QA scenarios for the credsync simulator, and the ``credsync`` command line."""
