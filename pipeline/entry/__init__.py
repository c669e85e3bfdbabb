"""Entry points: the command line and the demo (the Luigi entry module is the ``pipeline``
package itself; the tasks live in ``tasks/``).
"""
