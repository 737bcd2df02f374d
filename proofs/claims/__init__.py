"""One module per topic of claims, each registering its claims with :func:`proofs.claim.claim`
(found by :func:`proofs.registry.load_claims`; nothing to import from the package itself)."""

__all__ = []
