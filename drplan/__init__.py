"""drplan: disaster-recovery plans as code.

The command line (``drplan``) is a thin shell over this library::

    from drplan.pipeline import validate_file, load_plan
    from drplan.graph import compile_graph, analyse
"""

__version__ = "0.1.0"
