"""The command modules of lrnet predict, export, models and save-pretrained: ``add_arguments`` and
``main`` over the library (``lrnet.cli`` maps each command name to its module)."""
