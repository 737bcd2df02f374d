"""Claims about the paper, their verdicts, and the ``ngd-verify`` command line.

The public names below are imported on first use, so ``import proofs`` stays light.  The claim
decorator lives in its module, ``from proofs.claim import claim`` (``proofs.claim`` is that module;
exporting the function under the module's name would make the meaning of ``proofs.claim`` depend on
import order).

>>> from proofs import Claim, ClaimResult, RunConfig, get_claim, load_claims, compare
>>> RunConfig().mode
'quick'
>>> compare("alpha", 2, 2.0, tolerance=1e-12).verdict
'verified'
"""
__distribution__ = "ngd-verifier"  # read by theory._guard: keep this line before any import

try:
    from theory._guard import check_siblings as _check_siblings, lazy_exports as _lazy_exports
except ImportError as _err:
    if type(_err).__name__ == "ForeignPackageError":
        raise
    import importlib.util as _util
    raise ImportError(f"ngd-verifier's 'proofs' needs ngd-verifier's package 'theory', but 'theory' resolves to "
                      f"{getattr(_util.find_spec('theory'), 'origin', None)!r} ({_err}); rename that folder or "
                      "uninstall the distribution providing 'theory', then reinstall ngd-verifier, best in a fresh "
                      "virtual environment") from _err

_check_siblings("proofs")

#: public name -> the module that defines it (imported on first access)
_LAZY = {
    "Claim": "proofs.claim",
    "ClaimResult": "proofs.claim",
    "RunConfig": "proofs.claim",
    "VERDICTS": "proofs.claim",
    "load_claims": "proofs.registry",
    "select_claims": "proofs.registry",
    "get_claim": "proofs.registry",
    "SubVerdict": "proofs.verdicts",
    "compare": "proofs.verdicts",
    "sweep": "proofs.verdicts",
    "levels_off": "proofs.verdicts",
    "control": "proofs.verdicts",
    "combine": "proofs.verdicts",
    "derivation_verdict": "proofs.verdicts",
    "to_result": "proofs.verdicts",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = _lazy_exports('proofs', _LAZY)
