"""The theory of each Fisher approximation, one module per approximation, registered once.

Every module here registers its derivation (and, where the theory gives one, its infinite-width
test kernel) with :func:`theory.registry.register_theory`; :mod:`theory.registry` imports them
all with :mod:`pkgutil`, so adding an approximation adds a module here and edits nothing else.
Shared layer-wise helpers live in :mod:`theory.approximations._layerwise`.
"""
__all__: list = []
