"""The `dlearn` subcommands, one module per workflow stage.

Each module is light (standard library, :mod:`dlearn.options` and options dataclasses: no numpy
work, no torch) and defines:

- ``NAME``, ``HELP``, ``DESCRIPTION``: the subcommand and its help texts;
- ``OUTPUTS``: what it writes, flag destination -> kind (see :func:`dlearn.outputs.check_output`);
  every other path flag is an input;
- ``add_arguments(parser)``: its flags, options dataclasses' fields through :func:`dlearn.options.add_options`;
- ``run(args)``: the stage; it imports its implementation when called, before reading ``args``.

:mod:`dlearn.cli` only collects them, so `dlearn --help` and a stage's ``--help`` load no stage's
implementation, and :mod:`dlearn.codeversion` hashes for a command its own module's import closure.
This package's ``__init__`` imports nothing: importing one stage does not import the others.
"""
