"""Reference values of Var[psi] for psi^2 ~ Scale-inv-chi^2(rho, 1) (Liu et al. 2020, Eq. 2),
computed with 50-digit arithmetic (mpmath), for the tests of src/experiments/variance.rs.

    python3 tools/variance_reference.py
"""
import mpmath

mpmath.mp.dps = 50

for rho in [5, 6, 10, 50, 100, 500, 2000]:
    rho = mpmath.mpf(rho)
    half = (rho - 1) / 2
    exact = rho / (rho - 2) - rho * mpmath.power(2, 2 * rho - 5) / mpmath.pi * mpmath.beta(half, half) ** 2
    first_order = rho / (2 * (rho - 2) * (rho - 4))
    print(f"({int(rho)}.0, {mpmath.nstr(exact, 17)}, {mpmath.nstr((first_order - exact) / exact, 17)}),")
