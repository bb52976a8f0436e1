"""R's GLM families, as R 4.2's ``stats`` package defines them, for glmer's PIRLS and Laplace steps.

A :class:`Family` is R's ``family`` object: the variance function, the deviance residuals, the
AIC (``-2 log L`` as ``family$aic`` computes it), the check of the fitted means and the
``initialize`` expression that turns the response into ``y``, ``weights``, ``n`` and ``mustart``;
its :class:`Link` is R's ``make.link``: ``linkfun``, ``linkinv``, ``mu.eta`` and ``valideta``.
Each formula is R's own, in R's order of operations, including the clamps R puts on purpose
(the logit's ``[eps, 1 - eps]`` of its C code, the probit's and cauchit's thresholds, the
cloglog's and log's ``pmax(..., .Machine$double.eps)``), so that the numbers are R's to the
last bit or two (``tests/test_families.py`` compares them with R at a relative 1e-13).

The densities under the AIC are R's nmath routines, ported here: ``dbinom`` (Loader's
saddle point: ``stirlerr``, ``bd0``), ``dpois`` (R 4.1's ``ebd0``, Welinder's exact
``bd0`` split in two parts) and ``dgamma``; the probit's ``pnorm`` (Cody), ``qnorm``
(Wichura's AS 241) and ``dnorm``, the cauchit's ``pcauchy``, ``qcauchy`` and ``dcauchy``.

>>> fam = family("binomial", link="probit")
>>> fam.canonical, fam.dispersion_free
(False, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np
from scipy import special

from sparselmm import validate
from sparselmm.errors import ArgumentError, DataError

__all__ = [
    "Link",
    "Family",
    "make_link",
    "family",
    "binomial",
    "poisson",
    "Gamma",
    "inverse_gaussian",
    "gaussian",
    "LINK_NAMES",
    "FAMILY_LINKS",
    "DEFAULT_LINKS",
]

ArrayLike = Any

# ----------------------------------------------------------------------------------------
# constants (C's <float.h> and R's Rmath.h)

DBL_EPSILON = float(np.finfo(float).eps)
DBL_MIN = float(np.finfo(float).tiny)
DBL_MAX = float(np.finfo(float).max)
_INF = math.inf
_M_PI = math.pi
_M_LN2 = 0.693147180559945309417232121458
_M_SQRT2 = 1.41421356237309504880168872421
_M_SQRT_32 = 5.656854249492380195206754896838
_M_1_SQRT_2PI = 0.398942280401432677939946059934
_M_LN_SQRT_2PI = 0.918938533204672741780329736406
_M_LN_2PI = 1.837877066409345483560659472811
_M_2PI = 6.283185307179586476925286766559
_M_SQRT_2PI = 2.50662827463100050241576528481104525301
_X_LRG = 2.86111748575702815380240589208115399625e307  # 2^1023 / pi (dpois.c)


def _arr(x: ArrayLike) -> np.ndarray:
    """A float array of ``x`` (a new one when ``x`` is a list or of another dtype)."""
    return np.asarray(x, dtype=float)


def _rsum(x: np.ndarray) -> float:
    """R's ``sum`` of doubles (accumulated in long double): the exactly rounded sum where every
    term is finite (``math.fsum``), numpy's otherwise (infinities and NaN propagate)."""
    x = np.ravel(x)
    if np.all(np.isfinite(x)):
        return math.fsum(x.tolist())
    return float(np.sum(x))


def _nonint(x: np.ndarray) -> np.ndarray:
    """nmath's ``R_nonint``: ``|x - nearbyint(x)| > 1e-7 max(1, |x|)``."""
    with np.errstate(invalid="ignore"):
        return np.abs(x - np.rint(x)) > 1e-7 * np.maximum(1.0, np.abs(x))


# ----------------------------------------------------------------------------------------
# R's nmath, ported (lower tail, not on the log scale, unless said): vectorised, branch by branch


def _pnorm(x: ArrayLike) -> np.ndarray:
    """``pnorm(x)``: R's ``pnorm_both`` (Cody's rational approximations)."""
    x = _arr(x)
    out = np.empty(x.shape)
    y = np.abs(x)
    nan = np.isnan(x)
    out[nan] = x[nan]
    inf = np.isinf(x)
    out[inf] = np.where(x[inf] < 0, 0.0, 1.0)
    fin = ~nan & ~inf
    a = (2.2352520354606839287, 161.02823106855587881, 1067.6894854603709582, 18154.981253343561249,
         0.065682337918207449113)
    b = (47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956)
    c = (0.39894151208813466764, 8.8831497943883759412, 93.506656132177855979, 597.27027639480026226,
         2494.5375852903726711, 6848.1904505362823326, 11602.651437647350124, 9842.7148383839780218,
         1.0765576773720192317e-8)
    d = (22.266688044328115691, 235.38790178262499861, 1519.377599407554805, 6485.558298266760755,
         18615.571640885098091, 34900.952721145977266, 38912.003286093271411, 19685.429676859990727)
    p = (0.21589853405795699, 0.1274011611602473639, 0.022235277870649807, 0.001421619193227893466,
         2.9112874951168792e-5, 0.02307344176494017303)
    q = (1.28426009614491121, 0.468238212480865118, 0.0659881378689285515, 0.00378239633202758244,
         7.29751555083966205e-5)
    eps = DBL_EPSILON * 0.5

    def do_del(X: np.ndarray, temp: np.ndarray, xx: np.ndarray) -> np.ndarray:
        xsq = np.ldexp(np.trunc(np.ldexp(X, 4)), -4)
        dl = (X - xsq) * (X + xsq)
        cum = np.exp(-xsq * np.ldexp(xsq, -1)) * np.exp(-np.ldexp(dl, -1)) * temp
        ccum = 1.0 - cum
        return np.where(xx > 0.0, ccum, cum)

    m1 = fin & (y <= 0.67448975)
    if m1.any():
        xx = x[m1]
        xsq = xx * xx
        xnum = a[4] * xsq
        xden = xsq
        for i in range(3):
            xnum = (xnum + a[i]) * xsq
            xden = (xden + b[i]) * xsq
        small = np.abs(xx) <= eps
        xnum = np.where(small, 0.0, xnum)
        xden = np.where(small, 0.0, xden)
        temp = xx * (xnum + a[3]) / (xden + b[3])
        out[m1] = 0.5 + temp
    m2 = fin & ~m1 & (y <= _M_SQRT_32)
    if m2.any():
        yy = y[m2]
        xnum = c[8] * yy
        xden = yy
        for i in range(7):
            xnum = (xnum + c[i]) * yy
            xden = (xden + d[i]) * yy
        temp = (xnum + c[7]) / (xden + d[7])
        out[m2] = do_del(yy, temp, x[m2])
    m3 = fin & ~m1 & ~m2 & (-37.5193 < x) & (x < 8.2924)
    if m3.any():
        xx, yy = x[m3], y[m3]
        xsq = 1.0 / (xx * xx)
        xnum = p[5] * xsq
        xden = xsq
        for i in range(4):
            xnum = (xnum + p[i]) * xsq
            xden = (xden + q[i]) * xsq
        temp = xsq * (xnum + p[4]) / (xden + q[4])
        temp = (_M_1_SQRT_2PI - temp) / yy
        with np.errstate(under="ignore"):
            out[m3] = do_del(xx, temp, xx)
    m4 = fin & ~m1 & ~m2 & ~m3
    out[m4] = np.where(x[m4] > 0, 1.0, 0.0)
    return out


def _qnorm(p: ArrayLike) -> np.ndarray:
    """``qnorm(p)``: R's ``qnorm5`` (Wichura's AS 241); NaN outside [0, 1]."""
    p = _arr(p)
    out = np.full(p.shape, np.nan)
    nan = np.isnan(p)
    out[nan] = p[nan]
    out[p == 0] = -_INF
    out[p == 1] = _INF
    inner = ~nan & (p > 0) & (p < 1)
    q = p - 0.5
    c = inner & (np.abs(q) <= 0.425)
    if c.any():
        qq = q[c]
        r = 0.180625 - qq * qq
        out[c] = (
            qq * (((((((r * 2509.0809287301226727 + 33430.575583588128105) * r + 67265.770927008700853) * r
                      + 45921.953931549871457) * r + 13731.693765509461125) * r + 1971.5909503065514427) * r
                   + 133.14166789178437745) * r + 3.387132872796366608)
            / (((((((r * 5226.495278852854561 + 28729.085735721942674) * r + 39307.89580009271061) * r
                    + 21213.794301586595867) * r + 5394.1960214247511077) * r + 687.1870074920579083) * r
                 + 42.313330701600911252) * r + 1.0)
        )
    t = inner & ~c
    if t.any():
        pp, qq = p[t], q[t]
        r = np.sqrt(-np.log(np.where(qq > 0, 0.5 - pp + 0.5, pp)))
        val = np.empty(pp.shape)
        lo = r <= 5.0
        r1 = r[lo] - 1.6
        val[lo] = (((((((r1 * 7.7454501427834140764e-4 + 0.0227238449892691845833) * r1 + 0.24178072517745061177)
                       * r1 + 1.27045825245236838258) * r1 + 3.64784832476320460504) * r1 + 5.7694972214606914055)
                     * r1 + 4.6303378461565452959) * r1 + 1.42343711074968357734) / (
            ((((((r1 * 1.05075007164441684324e-9 + 5.475938084995344946e-4) * r1 + 0.0151986665636164571966) * r1
                 + 0.14810397642748007459) * r1 + 0.68976733498510000455) * r1 + 1.6763848301838038494) * r1
             + 2.05319162663775882187) * r1 + 1.0)
        hi = ~lo & (r >= 816)
        val[hi] = r[hi] * _M_SQRT2
        mid = ~lo & ~hi
        r2 = r[mid] - 5.0
        val[mid] = (((((((r2 * 2.01033439929228813265e-7 + 2.71155556874348757815e-5) * r2
                         + 0.0012426609473880784386) * r2 + 0.026532189526576123093) * r2 + 0.29656057182850489123)
                      * r2 + 1.7848265399172913358) * r2 + 5.4637849111641143699) * r2 + 6.6579046435011037772) / (
            ((((((r2 * 2.04426310338993978564e-15 + 1.4215117583164458887e-7) * r2 + 1.8463183175100546818e-5)
                 * r2 + 7.868691311456132591e-4) * r2 + 0.0148753612908506148525) * r2 + 0.13692988092273580531)
             * r2 + 0.59983220655588793769) * r2 + 1.0)
        out[t] = np.where(qq < 0.0, -val, val)
    return out


def _dnorm(x: ArrayLike) -> np.ndarray:
    """``dnorm(x)``: R's ``dnorm4`` (the split of ``x`` beyond 5, Welinder's PR#15620)."""
    x = _arr(x)
    out = np.zeros(x.shape)
    nan = np.isnan(x)
    out[nan] = x[nan]
    y = np.abs(x)
    with np.errstate(all="ignore"):
        lo = ~nan & (y < 5)
        out[lo] = _M_1_SQRT_2PI * np.exp(-0.5 * y[lo] * y[lo]) / 1.0
        hi = ~nan & ~lo & (y < 2 * math.sqrt(DBL_MAX)) & ~(y > math.sqrt(-2 * _M_LN2 * (-1021 + 1 - 53)))
        yy = y[hi]
        x1 = np.ldexp(np.rint(np.ldexp(yy, 16)), -16)
        x2 = yy - x1
        out[hi] = _M_1_SQRT_2PI / 1.0 * (np.exp(-0.5 * x1 * x1) * np.exp((-0.5 * x2 - x1) * x2))
    return out


def _tanpi(x: np.ndarray) -> np.ndarray:
    """R's ``Rtanpi`` (R's own ``tanpi``: the C library of R 4.2 has none)."""
    x = np.fmod(x, 1.0)
    x = np.where(x <= -0.5, x + 1, np.where(x > 0.5, x - 1, x))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.tan(_M_PI * x)
    return np.where(x == 0.0, 0.0, np.where(x == 0.5, np.nan, np.where(x == 0.25, 1.0, np.where(x == -0.25, -1.0, t))))


def _pcauchy(x: ArrayLike) -> np.ndarray:
    """``pcauchy(x)`` (``atan(1/x) / pi`` beyond 1: Welinder's and Ian Smith's)."""
    x = _arr(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.arctan(1 / x) / _M_PI
        out = np.where(np.abs(x) > 1, np.where(x > 0, 0.5 - y + 0.5, -y), 0.5 + np.arctan(x) / _M_PI)
    out = np.where(np.isinf(x), np.where(x < 0, 0.0, 1.0), out)
    return np.where(np.isnan(x), x, out)


def _qcauchy(p: ArrayLike) -> np.ndarray:
    """``qcauchy(p)``; NaN outside [0, 1]."""
    p = _arr(p)
    lower = ~(p > 0.5)
    pp = np.where(p > 0.5, 1 - p, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = np.where(lower, -1.0, 1.0) / _tanpi(pp)
    out = np.where(pp == 0.5, 0.0, np.where(pp == 0.0, np.where(lower, -_INF, _INF), val))
    out = np.where(p == 1.0, _INF, out)
    out = np.where((p < 0) | (p > 1), np.nan, out)
    return np.where(np.isnan(p), p, out)


def _dcauchy(x: ArrayLike) -> np.ndarray:
    """``dcauchy(x)``."""
    x = _arr(x)
    with np.errstate(over="ignore"):
        return 1.0 / (_M_PI * 1.0 * (1.0 + x * x))


_SFERR_HALVES = (
    0.0,  # n=0 - wrong, place holder only
    0.1534264097200273452913848,  # 0.5
    0.0810614667953272582196702,  # 1.0
    0.0548141210519176538961390,  # 1.5
    0.0413406959554092940938221,  # 2.0
    0.03316287351993628748511048,  # 2.5
    0.02767792568499833914878929,  # 3.0
    0.02374616365629749597132920,  # 3.5
    0.02079067210376509311152277,  # 4.0
    0.01848845053267318523077934,  # 4.5
    0.01664469118982119216319487,  # 5.0
    0.01513497322191737887351255,  # 5.5
    0.01387612882307074799874573,  # 6.0
    0.01281046524292022692424986,  # 6.5
    0.01189670994589177009505572,  # 7.0
    0.01110455975820691732662991,  # 7.5
    0.010411265261972096497478567,  # 8.0
    0.009799416126158803298389475,  # 8.5
    0.009255462182712732917728637,  # 9.0
    0.008768700134139385462952823,  # 9.5
    0.008330563433362871256469318,  # 10.0
    0.007934114564314020547248100,  # 10.5
    0.007573675487951840794972024,  # 11.0
    0.007244554301320383179543912,  # 11.5
    0.006942840107209529865664152,  # 12.0
    0.006665247032707682442354394,  # 12.5
    0.006408994188004207068439631,  # 13.0
    0.006171712263039457647532867,  # 13.5
    0.005951370112758847735624416,  # 14.0
    0.005746216513010115682023589,  # 14.5
    0.005554733551962801371038690,  # 15.0
)


def _stirlerr(n: np.ndarray) -> np.ndarray:
    """``stirlerr(n) = log(n!) - log(sqrt(2 pi n) (n/e)^n)`` (stirlerr.c, R 4.2)."""
    S0, S1, S2, S3, S4 = (0.083333333333333333333, 0.00277777777777777777778, 0.00079365079365079365079365,
                          0.000595238095238095238095238, 0.0008417508417508417508417508)
    n = _arr(n)
    out = np.empty(n.shape)
    small = n <= 15.0
    nn = n + n
    half = small & (nn == np.trunc(nn))
    out[half] = np.take(_SFERR_HALVES, nn[half].astype(int))
    other = small & ~half
    if other.any():
        m = n[other]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[other] = special.gammaln(m + 1.0) - (m + 0.5) * np.log(m) + m - _M_LN_SQRT_2PI
    big = ~small
    m = n[big]
    nn = m * m
    out[big] = np.where(
        m > 500, (S0 - S1 / nn) / m,
        np.where(m > 80, (S0 - (S1 - S2 / nn) / nn) / m,
                 np.where(m > 35, (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / m,
                          (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / m)))
    return out


def _bd0(x: np.ndarray, npr: np.ndarray) -> np.ndarray:
    """Loader's ``bd0(x, np) = x log(x/np) + np - x``, by its Taylor series near ``x = np``."""
    x, npr = np.broadcast_arrays(_arr(x), _arr(npr))
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        ok = np.isfinite(x) & np.isfinite(npr) & (npr != 0.0)
        taylor = ok & (np.abs(x - npr) < 0.1 * (x + npr))
        xt, nt = x[taylor], npr[taylor]
        v = (xt - nt) / (xt + nt)
        s = (xt - nt) * v
        res = np.full(xt.shape, np.nan)
        tiny = np.abs(s) < DBL_MIN
        res[tiny] = s[tiny]
        act = ~tiny
        ej = 2 * xt * v
        v = v * v
        for j in range(1, 1000):
            if not act.any():
                break
            ej = ej * v
            s_new = s + ej / ((j << 1) + 1)
            conv = act & (s_new == s)
            res[conv] = s_new[conv]
            s = np.where(act, s_new, s)
            act &= ~conv
        sub = out[taylor]
        sub[~act] = res[~act]
        out[taylor] = sub
        # the closed form: away from np (and where the series did not converge in 1000 terms)
        closed = ok & ~taylor
        if act.any():
            idx = np.flatnonzero(taylor)[act]
            closed.flat[idx] = True
        xc, nc = x[closed], npr[closed]
        out[closed] = xc * np.log(xc / nc) + nc - xc
    return out


# ebd0's table (bd0.c, R >= 4.1: Morten Welinder's PR#15628): entry i holds log(p/1024) with
# p = floor(1024 / (0.5 + i/256) + 0.5), in four float parts of 23 bits each; entry 0 is log(2)
_BD0_SCALE_HEX = (
    "+0x1.62e430p-1 -0x1.05c610p-29 -0x1.950d88p-54 +0x1.d9cc02p-79",
    "+0x1.5ee02cp-1 -0x1.6dbe98p-25 -0x1.51e540p-50 +0x1.2bfa48p-74",
    "+0x1.5ad404p-1 +0x1.86b3e4p-26 +0x1.9f6534p-50 +0x1.54be04p-74",
    "+0x1.570124p-1 -0x1.9ed750p-25 -0x1.f37dd0p-51 +0x1.10b770p-77",
    "+0x1.5326e4p-1 -0x1.9b9874p-25 -0x1.378194p-49 +0x1.56feb2p-74",
    "+0x1.4f4528p-1 +0x1.aca70cp-28 +0x1.103e74p-53 +0x1.9c410ap-81",
    "+0x1.4b5bd8p-1 -0x1.6a91d8p-25 -0x1.8e43d0p-50 -0x1.afba9ep-77",
    "+0x1.47ae54p-1 -0x1.abb51cp-25 +0x1.19b798p-51 +0x1.45e09cp-76",
    "+0x1.43fa00p-1 -0x1.d06318p-25 -0x1.8858d8p-49 -0x1.1927c4p-75",
    "+0x1.3ffa40p-1 +0x1.1a427cp-25 +0x1.151640p-53 -0x1.4f5606p-77",
    "+0x1.3c7c80p-1 -0x1.19bf48p-34 +0x1.05fc94p-58 -0x1.c096fcp-82",
    "+0x1.38b320p-1 +0x1.6b5778p-25 +0x1.be38d0p-50 -0x1.075e96p-74",
    "+0x1.34e288p-1 +0x1.d9ce1cp-25 +0x1.316eb8p-49 +0x1.2d885cp-73",
    "+0x1.315124p-1 +0x1.c2fc60p-29 -0x1.4396fcp-53 +0x1.acf376p-78",
    "+0x1.2db954p-1 +0x1.720de4p-25 -0x1.d39b04p-49 -0x1.f11176p-76",
    "+0x1.2a1b08p-1 -0x1.562494p-25 +0x1.a7863cp-49 +0x1.85dd64p-73",
    "+0x1.267620p-1 +0x1.3430e0p-29 -0x1.96a958p-56 +0x1.f8e636p-82",
    "+0x1.23130cp-1 +0x1.7bebf4p-25 +0x1.416f1cp-52 -0x1.78dd36p-77",
    "+0x1.1faa34p-1 +0x1.70e128p-26 +0x1.81817cp-50 -0x1.c2179cp-76",
    "+0x1.1bf204p-1 +0x1.3a9620p-28 +0x1.2f94c0p-52 +0x1.9096c0p-76",
    "+0x1.187ce4p-1 -0x1.077870p-27 +0x1.655a80p-51 +0x1.eaafd6p-78",
    "+0x1.1501c0p-1 -0x1.406cacp-25 -0x1.e72290p-49 +0x1.5dd800p-73",
    "+0x1.11cb80p-1 +0x1.787cd0p-25 -0x1.efdc78p-51 -0x1.5380cep-77",
    "+0x1.0e4498p-1 +0x1.747324p-27 -0x1.024548p-51 +0x1.77a5a6p-75",
    "+0x1.0b036cp-1 +0x1.690c74p-25 +0x1.5d0cc4p-50 -0x1.c0e23cp-76",
    "+0x1.077070p-1 -0x1.a769bcp-27 +0x1.452234p-52 +0x1.6ba668p-76",
    "+0x1.04240cp-1 -0x1.a686acp-27 -0x1.ef46b0p-52 -0x1.5ce10cp-76",
    "+0x1.00d22cp-1 +0x1.fc0e10p-25 +0x1.6ee034p-50 -0x1.19a2ccp-74",
    "+0x1.faf588p-2 +0x1.ef1e64p-27 -0x1.26504cp-54 -0x1.b15792p-82",
    "+0x1.f4d87cp-2 +0x1.d7b980p-26 -0x1.a114d8p-50 +0x1.9758c6p-75",
    "+0x1.ee1414p-2 +0x1.2ec060p-26 +0x1.dc00fcp-52 +0x1.f8833cp-76",
    "+0x1.e7e32cp-2 -0x1.ac796cp-27 -0x1.a68818p-54 +0x1.235d02p-78",
    "+0x1.e108a0p-2 -0x1.768ba4p-28 -0x1.f050a8p-52 +0x1.00d632p-82",
    "+0x1.dac354p-2 -0x1.d3a6acp-30 +0x1.18734cp-57 -0x1.f97902p-83",
    "+0x1.d47424p-2 +0x1.7dbbacp-31 -0x1.d5ada4p-56 +0x1.56fcaap-81",
    "+0x1.ce1af0p-2 +0x1.70be7cp-27 +0x1.6f6fa4p-51 +0x1.7955a2p-75",
    "+0x1.c7b798p-2 +0x1.ec36ecp-26 -0x1.07e294p-50 -0x1.ca183cp-75",
    "+0x1.c1ef04p-2 +0x1.c1dfd4p-26 +0x1.888eecp-50 -0x1.fd6b86p-75",
    "+0x1.bb7810p-2 +0x1.478bfcp-26 +0x1.245b8cp-50 +0x1.ea9d52p-74",
    "+0x1.b59da0p-2 -0x1.882b08p-27 +0x1.31573cp-53 -0x1.8c249ap-77",
    "+0x1.af1294p-2 -0x1.b710f4p-27 +0x1.622670p-51 +0x1.128578p-76",
    "+0x1.a925d4p-2 -0x1.0ae750p-27 +0x1.574ed4p-51 +0x1.084996p-75",
    "+0x1.a33040p-2 +0x1.027d30p-29 +0x1.b9a550p-53 -0x1.b2e38ap-78",
    "+0x1.9d31c0p-2 -0x1.5ec12cp-26 -0x1.5245e0p-52 +0x1.2522d0p-79",
    "+0x1.972a34p-2 +0x1.135158p-30 +0x1.a5c09cp-56 +0x1.24b70ep-80",
    "+0x1.911984p-2 +0x1.0995d4p-26 +0x1.3bfb5cp-50 +0x1.2c9dd6p-75",
    "+0x1.8bad98p-2 -0x1.1d6144p-29 +0x1.5b9208p-53 +0x1.1ec158p-77",
    "+0x1.858b58p-2 -0x1.1b4678p-27 +0x1.56cab4p-53 -0x1.2fdc0cp-78",
    "+0x1.7f5fa0p-2 +0x1.3aaf48p-27 +0x1.461964p-51 +0x1.4ae476p-75",
    "+0x1.79db68p-2 -0x1.7e5054p-26 +0x1.673750p-51 -0x1.a11f7ap-76",
    "+0x1.744f88p-2 -0x1.cc0e18p-26 -0x1.1e9d18p-50 -0x1.6c06bcp-78",
    "+0x1.6e08ecp-2 -0x1.5d45e0p-26 -0x1.c73ec8p-50 +0x1.318d72p-74",
    "+0x1.686c80p-2 +0x1.e9b14cp-26 -0x1.13bbd4p-50 -0x1.efeb1cp-78",
    "+0x1.62c830p-2 -0x1.a8c70cp-27 -0x1.5a1214p-51 -0x1.bab3fcp-79",
    "+0x1.5d1bdcp-2 -0x1.4fec6cp-31 +0x1.423638p-56 +0x1.ee3feep-83",
    "+0x1.576770p-2 +0x1.7455a8p-26 -0x1.3ab654p-50 -0x1.26be4cp-75",
    "+0x1.5262e0p-2 -0x1.146778p-26 -0x1.b9f708p-52 -0x1.294018p-77",
    "+0x1.4c9f08p-2 +0x1.e152c4p-26 -0x1.dde710p-53 +0x1.fd2208p-77",
    "+0x1.46d2d8p-2 +0x1.c28058p-26 -0x1.936284p-50 +0x1.9fdd68p-74",
    "+0x1.41b940p-2 +0x1.cce0c0p-26 -0x1.1a4050p-50 +0x1.bc0376p-76",
    "+0x1.3bdd24p-2 +0x1.d6296cp-27 +0x1.425b48p-51 -0x1.cddb2cp-77",
    "+0x1.36b578p-2 -0x1.287ddcp-27 -0x1.2d0f4cp-51 +0x1.38447ep-75",
    "+0x1.31871cp-2 +0x1.2a8830p-27 +0x1.3eae54p-52 -0x1.898136p-77",
    "+0x1.2b9304p-2 -0x1.51d8b8p-28 +0x1.27694cp-52 -0x1.fd852ap-76",
    "+0x1.265620p-2 -0x1.d98f3cp-27 +0x1.a44338p-51 -0x1.56e85ep-78",
    "+0x1.211254p-2 +0x1.986160p-26 +0x1.73c5d0p-51 +0x1.4a861ep-75",
    "+0x1.1bc794p-2 +0x1.fa3918p-27 +0x1.879c5cp-51 +0x1.16107cp-78",
    "+0x1.1675ccp-2 -0x1.4545a0p-26 +0x1.c07398p-51 +0x1.f55c42p-76",
    "+0x1.111ce4p-2 +0x1.f72670p-37 -0x1.b84b5cp-61 +0x1.a4a4dcp-85",
    "+0x1.0c81d4p-2 +0x1.0c150cp-27 +0x1.218600p-51 -0x1.d17312p-76",
    "+0x1.071b84p-2 +0x1.fcd590p-26 +0x1.a3a2e0p-51 +0x1.fe5ef8p-76",
    "+0x1.01ade4p-2 -0x1.bb1844p-28 +0x1.db3cccp-52 +0x1.1f56fcp-77",
    "+0x1.fa01c4p-3 -0x1.12a0d0p-29 -0x1.f71fb0p-54 +0x1.e287a4p-78",
    "+0x1.ef0adcp-3 +0x1.7b8b28p-28 -0x1.35bce4p-52 -0x1.abc8f8p-79",
    "+0x1.e598ecp-3 +0x1.5a87e4p-27 -0x1.134bd0p-51 +0x1.c2cebep-76",
    "+0x1.da85d8p-3 -0x1.df31b0p-27 +0x1.94c16cp-57 +0x1.8fd7eap-82",
    "+0x1.d0fb80p-3 -0x1.bb5434p-28 -0x1.ea5640p-52 -0x1.8ceca4p-77",
    "+0x1.c765b8p-3 +0x1.e4d68cp-27 +0x1.5b59b4p-51 +0x1.76f6c4p-76",
    "+0x1.bdc46cp-3 -0x1.1cbb50p-27 +0x1.2da010p-51 +0x1.eb282cp-75",
    "+0x1.b27980p-3 -0x1.1b9ce0p-27 +0x1.7756f8p-52 +0x1.2ff572p-76",
    "+0x1.a8bed0p-3 -0x1.bbe874p-30 +0x1.85cf20p-56 +0x1.b9cf18p-80",
    "+0x1.9ef83cp-3 +0x1.2769a4p-27 -0x1.85bda0p-52 +0x1.8c8018p-79",
    "+0x1.9525a8p-3 +0x1.cf456cp-27 -0x1.7137d8p-52 -0x1.f158e8p-76",
    "+0x1.8b46f8p-3 +0x1.11b12cp-30 +0x1.9f2104p-54 -0x1.22836ep-78",
    "+0x1.83040cp-3 +0x1.2379e4p-28 +0x1.b71c70p-52 -0x1.990cdep-76",
    "+0x1.790ed4p-3 +0x1.dc4c68p-28 -0x1.910ac8p-52 +0x1.dd1bd6p-76",
    "+0x1.6f0d28p-3 +0x1.5cad68p-28 +0x1.737c94p-52 -0x1.9184bap-77",
    "+0x1.64fee8p-3 +0x1.04bf88p-28 +0x1.6fca28p-52 +0x1.8884a8p-76",
    "+0x1.5c9400p-3 +0x1.d65cb0p-29 -0x1.b2919cp-53 +0x1.b99bcep-77",
    "+0x1.526e60p-3 -0x1.c5e4bcp-27 -0x1.0ba380p-52 +0x1.d6e3ccp-79",
    "+0x1.483bccp-3 +0x1.9cdc7cp-28 -0x1.5ad8dcp-54 -0x1.392d3cp-83",
    "+0x1.3fb25cp-3 -0x1.a6ad74p-27 +0x1.5be6b4p-52 -0x1.4e0114p-77",
    "+0x1.371fc4p-3 -0x1.fe1708p-27 -0x1.78864cp-52 -0x1.27543ap-76",
    "+0x1.2cca10p-3 -0x1.4141b4p-28 -0x1.ef191cp-52 +0x1.00ee08p-76",
    "+0x1.242310p-3 +0x1.3ba510p-27 -0x1.d003c8p-51 +0x1.162640p-76",
    "+0x1.1b72acp-3 +0x1.52f67cp-27 -0x1.fd6fa0p-51 +0x1.1a3966p-77",
    "+0x1.10f8e4p-3 +0x1.129cd8p-30 +0x1.31ef30p-55 +0x1.a73e38p-79",
    "+0x1.08338cp-3 -0x1.005d7cp-27 -0x1.661a9cp-51 +0x1.1f138ap-79",
    "+0x1.fec914p-4 -0x1.c482a8p-29 -0x1.55746cp-54 +0x1.99f932p-80",
    "+0x1.ed1794p-4 +0x1.d06f00p-29 +0x1.75e45cp-53 -0x1.d0483ep-78",
    "+0x1.db5270p-4 +0x1.87d928p-32 -0x1.0f52a4p-57 +0x1.81f4a6p-84",
    "+0x1.c97978p-4 +0x1.af1d24p-29 -0x1.0977d0p-60 -0x1.8839d0p-84",
    "+0x1.b78c84p-4 -0x1.44f124p-28 -0x1.ef7bc4p-52 +0x1.9e0650p-78",
    "+0x1.a58b60p-4 +0x1.856464p-29 +0x1.c651d0p-55 +0x1.b06b0cp-79",
    "+0x1.9375e4p-4 +0x1.5595ecp-28 +0x1.dc3738p-52 +0x1.86c89ap-81",
    "+0x1.814be4p-4 -0x1.c073fcp-28 -0x1.371f88p-53 -0x1.5f4080p-77",
    "+0x1.6f0d28p-4 +0x1.5cad68p-29 +0x1.737c94p-53 -0x1.9184bap-78",
    "+0x1.60658cp-4 -0x1.6c8af4p-28 +0x1.d8ef74p-55 +0x1.c4f792p-80",
    "+0x1.4e0110p-4 +0x1.146b5cp-29 +0x1.73f7ccp-54 -0x1.d28db8p-79",
    "+0x1.3b8758p-4 +0x1.8b1b70p-28 -0x1.20aca4p-52 -0x1.651894p-76",
    "+0x1.28f834p-4 +0x1.43b6a4p-30 -0x1.452af8p-55 +0x1.976892p-80",
    "+0x1.1a0fbcp-4 -0x1.e4075cp-28 +0x1.1fe618p-52 +0x1.9d6dc2p-77",
    "+0x1.075984p-4 -0x1.4ce370p-29 -0x1.d9fc98p-53 +0x1.4ccf12p-77",
    "+0x1.f0a30cp-5 +0x1.162a68p-37 -0x1.e83368p-61 -0x1.d222a6p-86",
    "+0x1.cae730p-5 -0x1.1a8f7cp-31 -0x1.5f9014p-55 +0x1.2720c0p-79",
    "+0x1.ac9724p-5 -0x1.e8ee08p-29 +0x1.a7de04p-54 -0x1.9bba74p-78",
    "+0x1.868a84p-5 -0x1.ef8128p-30 +0x1.dc5eccp-54 -0x1.58d250p-79",
    "+0x1.67f950p-5 -0x1.ed684cp-30 -0x1.f060c0p-55 -0x1.b1294cp-80",
    "+0x1.494accp-5 +0x1.a6c890p-32 -0x1.c3ad48p-56 -0x1.6dc66cp-84",
    "+0x1.22c71cp-5 -0x1.8abe2cp-32 -0x1.7e7078p-56 -0x1.ddc3dcp-86",
    "+0x1.03d5d8p-5 +0x1.79cfbcp-31 -0x1.da7c4cp-58 +0x1.4e7582p-83",
    "+0x1.c98d18p-6 +0x1.a01904p-31 -0x1.854164p-55 +0x1.883c36p-79",
    "+0x1.8b31fcp-6 -0x1.356500p-30 +0x1.c3ab48p-55 +0x1.b69bdap-80",
    "+0x1.3cea44p-6 +0x1.a352bcp-33 -0x1.8865acp-57 -0x1.48159cp-81",
    "+0x1.fc0a8cp-7 -0x1.e07f84p-32 +0x1.e7cf6cp-58 +0x1.3a69c0p-82",
    "+0x1.7dc474p-7 +0x1.f810a8p-31 -0x1.245b5cp-56 -0x1.a1f4f8p-80",
    "+0x1.fe02a8p-8 -0x1.4ef988p-32 +0x1.1f86ecp-57 +0x1.20723cp-81",
    "+0x1.ff00acp-9 -0x1.d4ef44p-33 +0x1.2821acp-63 +0x1.5a6d32p-87",
    "0 0 0 0"
)
_BD0_SCALE = np.array(
    [[float(np.float32(float.fromhex(h))) if h != "0" else 0.0 for h in row.split()] for row in _BD0_SCALE_HEX]
)


def _logcf(x: np.ndarray, i: float, d: float, eps: float) -> np.ndarray:
    """The continued fraction ``sum_k x^k / (i + k d)`` of pgamma.c (used by ``log1pmx``)."""
    scalefactor = float(2**256)  # SQR(SQR(SQR(4294967296.0)))
    c1 = np.full(x.shape, 2 * d)
    c2 = np.full(x.shape, i + d)
    c4 = c2 + d
    a1 = c2.copy()
    b1 = i * (c2 - i * x)
    b2 = d * d * x
    a2 = c4 * c2 - b2
    b2 = c4 * b1 - i * b2
    act = np.abs(a2 * b1 - a1 * b2) > np.abs(eps * b1 * b2)
    while act.any():
        c3 = c2 * c2 * x
        n_c2 = c2 + d
        n_c4 = c4 + d
        n_a1 = n_c4 * a2 - c3 * a1
        n_b1 = n_c4 * b2 - c3 * b1
        c3 = c1 * c1 * x
        n_c1 = c1 + d
        n_c4 = n_c4 + d
        n_a2 = n_c4 * n_a1 - c3 * a2
        n_b2 = n_c4 * n_b1 - c3 * b2
        up = np.abs(n_b2) > scalefactor
        down = ~up & (np.abs(n_b2) < 1 / scalefactor)
        scale = np.where(up, 1 / scalefactor, np.where(down, scalefactor, 1.0))
        # a division by 2^256 and a multiplication by 2^-256 are the same exact operation
        n_a1, n_b1, n_a2, n_b2 = n_a1 * scale, n_b1 * scale, n_a2 * scale, n_b2 * scale
        c1, c2, c4 = np.where(act, n_c1, c1), np.where(act, n_c2, c2), np.where(act, n_c4, c4)
        a1, b1 = np.where(act, n_a1, a1), np.where(act, n_b1, b1)
        a2, b2 = np.where(act, n_a2, a2), np.where(act, n_b2, b2)
        act = act & (np.abs(a2 * b1 - a1 * b2) > np.abs(eps * b1 * b2))
    return a2 / b2


def _log1pmx(x: np.ndarray) -> np.ndarray:
    """``log(1 + x) - x``, accurate for small ``x`` (pgamma.c)."""
    x = _arr(x)
    out = np.empty(x.shape)
    with np.errstate(all="ignore"):
        big = (x > 1) | (x < -0.79149064)
        out[big] = np.log1p(x[big]) - x[big]
        xs = x[~big]
        r = xs / (2 + xs)
        y = r * r
        res = np.empty(xs.shape)
        small = np.abs(xs) < 1e-2
        two = 2.0
        rs, ys = r[small], y[small]
        res[small] = rs * ((((two / 9 * ys + two / 7) * ys + two / 5) * ys + two / 3) * ys - xs[small])
        mid = ~small
        if mid.any():
            res[mid] = r[mid] * (2 * y[mid] * _logcf(y[mid], 3.0, 2.0, 1e-14) - xs[mid])
        out[~big] = res
    return out


def _ebd0(x: np.ndarray, M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``x log(x/M) + M - x`` in two parts ``yh + yl`` (bd0.c's ``ebd0``)."""
    Sb, S, N = 10, 1024.0, 128
    x, M = np.broadcast_arrays(_arr(x), _arr(M))
    yh = np.zeros(x.shape)
    yl = np.zeros(x.shape)
    with np.errstate(all="ignore"):
        done = x == M
        m = ~done & (x == 0)
        yh[m] = M[m]
        done = done | m
        m = ~done & (M == 0)
        yh[m] = _INF
        done = done | m
        ratio = M / x
        m = ~done & (ratio == _INF)
        yh[m] = M[m]
        done = done | m
        r, e = np.frexp(np.where(done, 1.0, ratio))
        m = ~done & (_M_LN2 * (-e).astype(float) > 1.0 + DBL_MAX / x)
        yh[m] = _INF
        done = done | m
        i = np.where(done, N, np.floor((r - 0.5) * (2 * N) + 0.5)).astype(np.int64)
        f = np.floor(S / (0.5 + i / (2.0 * N)) + 0.5)
        fg = np.ldexp(f, -(e + Sb))
        m = ~done & (fg == _INF)
        yh[m] = _INF
        done = done | m
        act = ~done

        def add1(d: np.ndarray, mask: np.ndarray) -> None:
            d1 = np.floor(d + 0.5)
            d2 = d - d1
            yh[mask] += d1[mask]
            yl[mask] += d2[mask]

        add1(-x * _log1pmx((M * fg - x) / x), act)
        act = act & (fg != 1)
        ef = e.astype(float)
        for j in range(4):
            add1(x * _BD0_SCALE[i, j], act)
            add1(-x * _BD0_SCALE[0, j] * ef, act)
            bad = act & ~np.isfinite(yh)
            yh[bad] = _INF
            yl[bad] = 0.0
            act = act & ~bad
        add1(M, act)
        add1(-M * fg, act)
    return yh, yl


def _dpois_raw(x: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """``log dpois_raw(x, lambda)`` (dpois.c, R 4.2: ``ebd0``; ``x`` need not be an integer)."""
    x, lam = np.broadcast_arrays(_arr(x), _arr(lam))
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        done = lam == 0
        out[done] = np.where(x[done] == 0, 0.0, -_INF)
        m = ~done & ~np.isfinite(lam)
        out[m] = -_INF
        done = done | m
        m = ~done & (x < 0)
        out[m] = -_INF
        done = done | m
        m = ~done & (x <= lam * DBL_MIN)
        out[m] = -lam[m]
        done = done | m
        m = ~done & (lam < x * DBL_MIN)
        xm, lm = x[m], lam[m]
        out[m] = np.where(np.isfinite(xm), -lm + xm * np.log(lm) - special.gammaln(xm + 1), -_INF)
        done = done | m
        m = ~done
        if m.any():
            xm, lm = x[m], lam[m]
            yh, yl = _ebd0(xm, lm)
            yl = yl + _stirlerr(xm)
            lrg = xm >= _X_LRG
            r = np.where(lrg, _M_SQRT_2PI * np.sqrt(xm), _M_2PI * xm)
            out[m] = -yl - yh - np.where(lrg, np.log(r), 0.5 * np.log(r))
    return out


def _dpois_log(x: ArrayLike, lam: ArrayLike) -> np.ndarray:
    """``dpois(x, lambda, log = TRUE)``: -Inf for a non-integer ``x`` (where R warns)."""
    x, lam = np.broadcast_arrays(_arr(x), _arr(lam))
    out = np.full(x.shape, np.nan)
    nan = np.isnan(x) | np.isnan(lam)
    out[nan] = (x + lam)[nan]
    with np.errstate(invalid="ignore"):
        m = ~nan & (lam < 0)
        done = nan | m
        m = ~done & (_nonint(x) | (x < 0) | ~np.isfinite(x))
        out[m] = -_INF
        done = done | m
    m = ~done
    out[m] = _dpois_raw(np.rint(x[m]), lam[m])
    return out


def _dbinom_raw(x: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``log dbinom_raw(x, n, p, q)`` (dbinom.c: Loader's saddle point)."""
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        m = p == 0
        out[m] = np.where(x[m] == 0, 0.0, -_INF)
        done = m
        m = ~done & (q == 0)
        out[m] = np.where(x[m] == n[m], 0.0, -_INF)
        done = done | m
        m = ~done & (x == 0)
        nm, pm, qm = n[m], p[m], q[m]
        lc = np.where(pm < 0.1, -_bd0(nm, nm * qm) - nm * pm, nm * np.log(qm))
        out[m] = np.where(nm == 0, 0.0, lc)
        done = done | m
        m = ~done & (x == n)
        nm, pm, qm = n[m], p[m], q[m]
        out[m] = np.where(qm < 0.1, -_bd0(nm, nm * pm) - nm * qm, nm * np.log(pm))
        done = done | m
        m = ~done & ((x < 0) | (x > n))
        out[m] = -_INF
        done = done | m
        m = ~done
        if m.any():
            xm, nm, pm, qm = x[m], n[m], p[m], q[m]
            lc = _stirlerr(nm) - _stirlerr(xm) - _stirlerr(nm - xm) - _bd0(xm, nm * pm) - _bd0(nm - xm, nm * qm)
            lf = _M_LN_2PI + np.log(xm) + np.log1p(-xm / nm)
            out[m] = lc - 0.5 * lf
    return out


def _dbinom_log(x: ArrayLike, n: ArrayLike, p: ArrayLike) -> np.ndarray:
    """``dbinom(x, n, p, log = TRUE)``: -Inf for a non-integer ``x`` (where R warns)."""
    x, n, p = np.broadcast_arrays(_arr(x), _arr(n), _arr(p))
    out = np.full(x.shape, np.nan)
    nan = np.isnan(x) | np.isnan(n) | np.isnan(p)
    out[nan] = (x + n + p)[nan]
    with np.errstate(invalid="ignore"):
        bad = ~nan & ((p < 0) | (p > 1) | (n < 0) | _nonint(n))
        done = nan | bad
        m = ~done & (_nonint(x) | (x < 0) | ~np.isfinite(x))
        out[m] = -_INF
        done = done | m
    m = ~done
    pm = p[m]
    out[m] = _dbinom_raw(np.rint(x[m]), np.rint(n[m]), pm, 1 - pm)
    return out


def _dgamma_log(x: ArrayLike, shape: ArrayLike, scale: ArrayLike) -> np.ndarray:
    """``dgamma(x, shape, scale = scale, log = TRUE)`` (dgamma.c)."""
    x, shape, scale = np.broadcast_arrays(_arr(x), _arr(shape), _arr(scale))
    out = np.full(x.shape, np.nan)
    with np.errstate(all="ignore"):
        nan = np.isnan(x) | np.isnan(shape) | np.isnan(scale)
        out[nan] = (x + shape + scale)[nan]
        done = nan | (shape < 0) | (scale <= 0)
        m = ~done & (x < 0)
        out[m] = -_INF
        done = done | m
        m = ~done & (shape == 0)
        out[m] = np.where(x[m] == 0, _INF, -_INF)
        done = done | m
        m = ~done & (x == 0)
        sh = shape[m]
        out[m] = np.where(sh < 1, _INF, np.where(sh > 1, -_INF, -np.log(scale[m])))
        done = done | m
        m = ~done & (shape < 1)
        xm, sh, sc = x[m], shape[m], scale[m]
        ratio = sh / xm
        out[m] = _dpois_raw(sh, xm / sc) + np.where(np.isfinite(ratio), np.log(ratio), np.log(sh) - np.log(xm))
        done = done | m
        m = ~done
        xm, sh, sc = x[m], shape[m], scale[m]
        out[m] = _dpois_raw(sh - 1, xm / sc) - np.log(sc)
    return out


# ----------------------------------------------------------------------------------------
# links: make.link's nine


def _logit_linkfun(mu: np.ndarray) -> np.ndarray:
    bad = (mu < 0) | (mu > 1)
    if bad.any():
        v = mu[bad][0]
        raise ArgumentError(f"mu: value {v:g} out of range (0, 1) for the logit link")
    with np.errstate(divide="ignore"):
        return np.log(mu / (1 - mu))


def _logit_linkinv(eta: np.ndarray) -> np.ndarray:
    # R's: exp(η) within ±30, ε below, 1/ε above; then tmp / (1 + tmp) (in place: one temporary)
    eta = np.asarray(eta, dtype=float)
    tmp = np.asarray(np.exp(np.clip(eta, -30.0, 30.0)))
    tmp[eta < -30.0] = DBL_EPSILON
    tmp[eta > 30.0] = 1 / DBL_EPSILON
    den = np.asarray(tmp + 1.0)
    np.divide(tmp, den, out=den)
    return den


def _logit_mu_eta(eta: np.ndarray) -> np.ndarray:
    # R's: exp(η) / (1 + exp(η))² within ±30, ε outside
    eta = np.asarray(eta, dtype=float)
    e = np.asarray(np.exp(np.clip(eta, -30.0, 30.0)))
    opexp = np.asarray(e + 1.0)
    np.multiply(opexp, opexp, out=opexp)
    np.divide(e, opexp, out=e)
    e[(eta > 30.0) | (eta < -30.0)] = DBL_EPSILON
    return e


def _probit_linkinv(eta: np.ndarray) -> np.ndarray:
    return _pnorm(np.minimum(np.maximum(eta, -PROBIT_THRESH), PROBIT_THRESH))


def _probit_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(_dnorm(eta), DBL_EPSILON)


def _cauchit_linkinv(eta: np.ndarray) -> np.ndarray:
    return _pcauchy(np.minimum(np.maximum(eta, -CAUCHIT_THRESH), CAUCHIT_THRESH))


def _cauchit_mu_eta(eta: np.ndarray) -> np.ndarray:
    return np.maximum(_dcauchy(eta), DBL_EPSILON)


def _cloglog_linkfun(mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(-np.log(1 - mu))


def _cloglog_linkinv(eta: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.maximum(np.minimum(-np.expm1(-np.exp(eta)), 1 - DBL_EPSILON), DBL_EPSILON)


def _cloglog_mu_eta(eta: np.ndarray) -> np.ndarray:
    eta = np.minimum(eta, 700)
    with np.errstate(under="ignore"):
        return np.maximum(np.exp(eta) * np.exp(-np.exp(eta)), DBL_EPSILON)


def _log_linkfun(mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(mu)


def _log_linkinv(eta: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.maximum(np.exp(eta), DBL_EPSILON)


def _sqrt_linkfun(mu: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(mu)


def _inverse_square_linkfun(mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", over="ignore"):
        return 1 / (mu * mu)


def _inverse_square_linkinv(eta: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1 / np.sqrt(eta)


def _inverse_square_mu_eta(eta: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return -1 / (2 * np.power(eta, 1.5))


def _reciprocal(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1 / x


def _inverse_mu_eta(eta: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", over="ignore"):
        return -1 / (eta * eta)


def _always(eta: np.ndarray) -> bool:
    return True


def _finite_positive(eta: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(eta)) and np.all(eta > 0))


def _finite_nonzero(eta: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(eta)) and np.all(eta != 0))


_LinkFuns = tuple[
    Callable[[np.ndarray], np.ndarray],
    Callable[[np.ndarray], np.ndarray],
    Callable[[np.ndarray], np.ndarray],
    Callable[[np.ndarray], bool],
]

#: linkfun, linkinv, mu.eta, valideta of each of make.link's links
_LINKS: dict[str, _LinkFuns] = {
    "logit": (_logit_linkfun, _logit_linkinv, _logit_mu_eta, _always),
    "probit": (_qnorm, _probit_linkinv, _probit_mu_eta, _always),
    "cauchit": (_qcauchy, _cauchit_linkinv, _cauchit_mu_eta, _always),
    "cloglog": (_cloglog_linkfun, _cloglog_linkinv, _cloglog_mu_eta, _always),
    "identity": (np.array, np.array, np.ones_like, _always),
    "log": (_log_linkfun, _log_linkinv, _log_linkinv, _always),
    "sqrt": (_sqrt_linkfun, np.square, lambda eta: 2 * eta, _finite_positive),
    "1/mu^2": (_inverse_square_linkfun, _inverse_square_linkinv, _inverse_square_mu_eta, _finite_positive),
    "inverse": (_reciprocal, _reciprocal, _inverse_mu_eta, _finite_nonzero),
}

#: make.link's link names, in R's order
LINK_NAMES: tuple[str, ...] = tuple(_LINKS)

#: make.link's ``-qnorm(.Machine$double.eps)`` and ``-qcauchy(.Machine$double.eps)``
PROBIT_THRESH = float(-_qnorm(DBL_EPSILON))
CAUCHIT_THRESH = float(-_qcauchy(DBL_EPSILON))


def _quoted(names: tuple[str, ...]) -> str:
    return ", ".join(repr(n) for n in names)


@dataclass(frozen=True)
class Link:
    """A link function as R's ``make.link(name)`` makes it.

    Parameters
    ----------
    name : str
        R's name: ``"logit"``, ``"probit"``, ``"cauchit"``, ``"cloglog"``, ``"identity"``,
        ``"log"``, ``"sqrt"``, ``"1/mu^2"`` or ``"inverse"``.

    Raises
    ------
    ArgumentError
        For any other name.

    Notes
    -----
    The functions take array-likes and return float arrays of the same shape (``valideta`` a
    bool), computed as R computes them, clamps included: ``logit``'s ``linkinv`` is
    ``.Machine$double.eps``-bounded beyond ``|eta| > 30`` (R's C code), ``probit`` and
    ``cauchit`` clamp ``eta`` to ``±thresh`` (``-qnorm(eps)``, ``-qcauchy(eps)``) and bound
    ``mu.eta`` below by ``eps``, ``cloglog`` bounds ``mu`` to ``[eps, 1 - eps]``, ``log``
    bounds ``mu`` and ``mu.eta`` below by ``eps``.
    """

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in _LINKS:
            raise ArgumentError(f"unknown link {self.name!r}; choose one of {_quoted(LINK_NAMES)}")

    def linkfun(self, mu: ArrayLike) -> np.ndarray:
        """The link ``eta = g(mu)`` (R's ``linkfun``).

        Parameters
        ----------
        mu : array-like
            Means.

        Returns
        -------
        numpy.ndarray
            ``g(mu)``; ``±inf`` at the ends of the range (``logit(0)``), NaN outside it
            (``qnorm`` of a value above 1) as R gives them.

        Raises
        ------
        ArgumentError
            ``logit`` of a value outside [0, 1] (R's C code stops there too).
        """
        with np.errstate(all="ignore"):
            return np.asarray(_LINKS[self.name][0](_arr(mu)), dtype=float)

    def linkinv(self, eta: ArrayLike) -> np.ndarray:
        """The inverse link ``mu = g^{-1}(eta)`` (R's ``linkinv``, with R's clamps).

        Parameters
        ----------
        eta : array-like
            Linear predictors.

        Returns
        -------
        numpy.ndarray
        """
        with np.errstate(all="ignore"):
            return np.asarray(_LINKS[self.name][1](_arr(eta)), dtype=float)

    def mu_eta(self, eta: ArrayLike) -> np.ndarray:
        """``dmu/deta`` at ``eta`` (R's ``mu.eta``, with R's ``pmax(..., eps)`` where R has them).

        Parameters
        ----------
        eta : array-like
            Linear predictors.

        Returns
        -------
        numpy.ndarray
        """
        with np.errstate(all="ignore"):
            return np.asarray(_LINKS[self.name][2](_arr(eta)), dtype=float)

    def valideta(self, eta: ArrayLike) -> bool:
        """R's ``valideta``: ``eta`` all finite and positive (``sqrt``, ``1/mu^2``), finite and
        nonzero (``inverse``), anything for the others.

        Parameters
        ----------
        eta : array-like
            Linear predictors.

        Returns
        -------
        bool
        """
        return bool(_LINKS[self.name][3](_arr(eta)))


def make_link(name: Union[str, Link]) -> Link:
    """R's ``make.link``: the :class:`Link` of a name.

    Parameters
    ----------
    name : str or Link
        One of :data:`LINK_NAMES` (a :class:`Link` is returned as it is).

    Returns
    -------
    Link

    Raises
    ------
    ArgumentError
        For a name that is not one of R's links.
    """
    if isinstance(name, Link):
        return name
    return Link(name)


# ----------------------------------------------------------------------------------------
# families


def _y_log_y(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y != 0.0, y * np.log(y / mu), 0.0)


def _binomial_dev_resids(y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
    # R's C binomial_dev_resids
    return 2 * wt * (_y_log_y(y, mu) + _y_log_y(1 - y, 1 - mu))


def _poisson_dev_resids(y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
    y, mu, wt = np.broadcast_arrays(y, mu, wt)
    r = mu * wt
    p = y > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(p, wt * (y * np.log(y / mu) - (y - mu)), r)
    return 2 * r


def _gamma_dev_resids(y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -2 * wt * (np.log(np.where(y == 0, 1.0, y / mu)) - (y - mu) / mu)


def _inverse_gaussian_dev_resids(y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return wt * ((y - mu) * (y - mu)) / (y * (mu * mu))


def _gaussian_dev_resids(y: np.ndarray, mu: np.ndarray, wt: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return wt * ((y - mu) * (y - mu))


def _binomial_aic(y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    y, n, mu, wt = np.broadcast_arrays(y, n, mu, wt)
    m = n if np.any(n > 1) else wt
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where(m > 0, wt / m, 0.0)
        terms = coef * _dbinom_log(np.rint(m * y), np.rint(m), mu)
    return -2 * _rsum(terms)


def _poisson_aic(y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    with np.errstate(invalid="ignore"):
        return -2 * _rsum(_dpois_log(y, mu) * wt)


def _gamma_aic(y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    y, mu, wt = np.broadcast_arrays(y, mu, wt)
    nn = _rsum(wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        disp = dev / nn
        return -2 * _rsum(_dgamma_log(y, 1 / disp, mu * disp) * wt) + 2


def _inverse_gaussian_aic(y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    y, wt = np.broadcast_arrays(y, wt)
    sw = _rsum(wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        return sw * (1 + np.log(dev / sw * 2 * _M_PI)) + 3 * _rsum(np.log(y) * wt) + 2


def _gaussian_aic(y: np.ndarray, n: np.ndarray, mu: np.ndarray, wt: np.ndarray, dev: float) -> float:
    y, wt = np.broadcast_arrays(y, wt)
    nobs = y.size
    with np.errstate(divide="ignore", invalid="ignore"):
        return nobs * (np.log(dev / nobs * 2 * _M_PI) + 1) + 2 - _rsum(np.log(wt))


def _validmu_probability(mu: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))


def _validmu_positive(mu: np.ndarray) -> bool:
    return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))


def _validmu_any(mu: np.ndarray) -> bool:
    return True


_FamilyFuns = tuple[
    Callable[[np.ndarray], np.ndarray],
    Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], float],
    Callable[[np.ndarray], bool],
]

#: variance, dev.resids, aic, validmu of each family
_FAMILIES: dict[str, _FamilyFuns] = {
    "binomial": (lambda mu: mu * (1 - mu), _binomial_dev_resids, _binomial_aic, _validmu_probability),
    "poisson": (np.array, _poisson_dev_resids, _poisson_aic, _validmu_positive),
    "Gamma": (lambda mu: mu * mu, _gamma_dev_resids, _gamma_aic, _validmu_positive),
    "inverse.gaussian": (
        lambda mu: np.power(mu, 3.0), _inverse_gaussian_dev_resids, _inverse_gaussian_aic, _validmu_any
    ),
    "gaussian": (np.ones_like, _gaussian_dev_resids, _gaussian_aic, _validmu_any),
}

#: the links each family takes (R's okLinks, in R's order)
FAMILY_LINKS: dict[str, tuple[str, ...]] = {
    "binomial": ("logit", "probit", "cloglog", "cauchit", "log"),
    "poisson": ("log", "identity", "sqrt"),
    "Gamma": ("inverse", "identity", "log"),
    "inverse.gaussian": ("1/mu^2", "inverse", "identity", "log"),
    "gaussian": ("identity", "log", "inverse"),
}

#: R's default (canonical) link of each family
DEFAULT_LINKS: dict[str, str] = {
    "binomial": "logit",
    "poisson": "log",
    "Gamma": "inverse",
    "inverse.gaussian": "1/mu^2",
    "gaussian": "identity",
}

_FAMILY_NAMES = {
    "binomial": "binomial",
    "poisson": "poisson",
    "Gamma": "Gamma",
    "inverse.gaussian": "inverse.gaussian",
    "inverse_gaussian": "inverse.gaussian",
    "gaussian": "gaussian",
}


def _first_bad(values: np.ndarray, bad: np.ndarray) -> str:
    """``k value(s) ..., the first -1 at position 3``, for a message."""
    idx = np.flatnonzero(bad)
    if values.ndim < 2:
        where = f"position {idx[0]}"
    else:
        where = "row {}, column {}".format(*np.unravel_index(idx[0], values.shape))
    return f"{idx.size} value(s), the first {values.flat[idx[0]]:g} at {where}"


@dataclass(frozen=True)
class Family:
    """A GLM family as R's ``stats`` functions make it (``binomial(link = "probit")``).

    Parameters
    ----------
    name : str
        R's name: ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse.gaussian"`` or
        ``"gaussian"``.
    link : Link
        One of the links the family takes (:data:`FAMILY_LINKS`).

    Raises
    ------
    ArgumentError
        An unknown family or a link the family does not take.

    See Also
    --------
    family : the usual way to make one (names, aliases, default links).
    """

    name: str
    link: Link

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or self.name not in FAMILY_LINKS:
            raise ArgumentError(f"unknown family {self.name!r}; choose one of {_quoted(tuple(FAMILY_LINKS))}")
        if not isinstance(self.link, Link):
            raise ArgumentError(f"link must be a Link, got {self.link!r} ({type(self.link).__name__})")
        ok = FAMILY_LINKS[self.name]
        if self.link.name not in ok:
            raise ArgumentError(
                f"link {self.link.name!r} not available for the {self.name} family; available links are {_quoted(ok)}"
            )

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name!r})"

    def __str__(self) -> str:
        return f"Family: {self.name}\nLink function: {self.link.name}"

    # -- R's family members -------------------------------------------------------------------
    @property
    def canonical(self) -> bool:
        """Whether the link is the family's canonical one (R's default link): binomial-logit,
        poisson-log, Gamma-inverse, inverse.gaussian-1/mu^2, gaussian-identity."""
        return self.link.name == DEFAULT_LINKS[self.name]

    @property
    def dispersion_free(self) -> bool:
        """Whether the scale is fixed at 1 (binomial, poisson), not estimated."""
        return self.name in ("binomial", "poisson")

    def linkfun(self, mu: ArrayLike) -> np.ndarray:
        """The link's ``linkfun`` (:meth:`Link.linkfun`)."""
        return self.link.linkfun(mu)

    def linkinv(self, eta: ArrayLike) -> np.ndarray:
        """The link's ``linkinv`` (:meth:`Link.linkinv`)."""
        return self.link.linkinv(eta)

    def mu_eta(self, eta: ArrayLike) -> np.ndarray:
        """The link's ``mu.eta`` (:meth:`Link.mu_eta`)."""
        return self.link.mu_eta(eta)

    def valideta(self, eta: ArrayLike) -> bool:
        """The link's ``valideta`` (:meth:`Link.valideta`)."""
        return self.link.valideta(eta)

    def variance(self, mu: ArrayLike) -> np.ndarray:
        """The variance function ``V(mu)``: ``mu (1 - mu)``, ``mu``, ``mu^2``, ``mu^3``, 1.

        Parameters
        ----------
        mu : array-like
            Means.

        Returns
        -------
        numpy.ndarray
        """
        with np.errstate(all="ignore"):
            return np.asarray(_FAMILIES[self.name][0](_arr(mu)), dtype=float)

    def dev_resids(self, y: ArrayLike, mu: ArrayLike, wt: ArrayLike) -> np.ndarray:
        """R's ``dev.resids``: each observation's (weighted) contribution to the deviance.

        Parameters
        ----------
        y : array-like
            The response (for the binomial, proportions of successes).
        mu : array-like
            Means.
        wt : array-like
            Prior weights (for the binomial, the weights after ``initialize``: trials times the
            prior weights).

        Returns
        -------
        numpy.ndarray
            The deviance residuals (their sum is the deviance). The binomial's are R's C
            ``binomial_dev_resids``: ``2 wt (y log(y/mu) + (1-y) log((1-y)/(1-mu)))`` with
            ``0 log 0 = 0``.
        """
        y, mu, wt = _arr(y), _arr(mu), _arr(wt)
        with np.errstate(all="ignore"):
            return np.asarray(_FAMILIES[self.name][1](y, mu, wt), dtype=float)

    def aic(self, y: ArrayLike, n: ArrayLike, mu: ArrayLike, wt: ArrayLike, dev: float) -> float:
        """R's ``aic``: -2 log-likelihood as ``family$aic`` computes it (without the
        ``2 * rank`` that ``glm`` adds; with the ``+ 2`` for the scale R adds for Gamma,
        inverse.gaussian and gaussian).

        Parameters
        ----------
        y, n, mu, wt : array-like
            The response, the binomial's trials (``n`` of :meth:`initialize`; unused by the
            others), the means and the weights, as ``initialize`` returns them.
        dev : float
            The deviance, ``sum(dev_resids(y, mu, wt))`` (used by Gamma, inverse.gaussian and
            gaussian for the dispersion).

        Returns
        -------
        float
            binomial: ``-2 sum(ifelse(m > 0, wt/m, 0) dbinom(round(m y), round(m), mu, log))``
            with ``m = n`` if any ``n > 1`` else ``wt``; poisson: ``-2 sum(dpois(y, mu, log) wt)``;
            Gamma: ``-2 sum(dgamma(y, 1/disp, scale = mu disp, log) wt) + 2`` with
            ``disp = dev / sum(wt)``; inverse.gaussian:
            ``sum(wt) (1 + log(dev/sum(wt) 2 pi)) + 3 sum(log(y) wt) + 2``; gaussian:
            ``nobs (log(dev/nobs 2 pi) + 1) + 2 - sum(log(wt))``. A non-integer count has
            density 0 here (R warns and gives the same ``Inf``).
        """
        y, n, mu, wt = _arr(y), _arr(n), _arr(mu), _arr(wt)
        with np.errstate(all="ignore"):
            return float(_FAMILIES[self.name][2](y, n, mu, wt, float(dev)))

    def validmu(self, mu: ArrayLike) -> bool:
        """R's ``validmu``: all finite and in (0, 1) (binomial), finite and positive (poisson,
        Gamma), anything (inverse.gaussian, gaussian).

        Parameters
        ----------
        mu : array-like

        Returns
        -------
        bool
        """
        return bool(_FAMILIES[self.name][3](_arr(mu)))

    def initialize(
        self, y: ArrayLike, weights: ArrayLike | None = None, *, name: str = "y", have_start: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """R's ``family$initialize``: the response as the fit uses it, and starting means.

        Parameters
        ----------
        y : array-like
            The response: a vector (for the binomial, 0/1 values, booleans — a two-level factor
            as the caller codes it, ``level != first level`` — or proportions in [0, 1] with the
            trials as ``weights``), or for the binomial a two-column array ``(successes,
            failures)`` (R's ``cbind(s, f)``).
        weights : array-like, optional
            Prior weights (finite, non-negative), one per observation; 1 by default.
        name : str
            The response's name (its column, or ``cbind(s, f)``) for the messages.
        have_start : bool
            Starting values are given (R's ``etastart``/``start``/``mustart``): the gaussian's
            check that ``y`` allows its link's start (``y > 0`` for log, ``y != 0`` for inverse)
            is skipped, as R skips it.

        Returns
        -------
        y, weights, n, mustart : numpy.ndarray
            As R's expression leaves them: for ``cbind(s, f)``, ``y = s/(s+f)`` (0 where
            ``s + f = 0``), ``weights = weights (s+f)``, ``n = s+f``; for a binomial vector,
            ``y`` set to 0 where the weight is 0 and ``n = 1``; ``mustart`` is
            ``(weights y + 0.5)/(weights + 1)`` (binomial vector), ``(n y + 0.5)/(n + 1)``
            (cbind), ``y + 0.1`` (poisson), ``y`` (Gamma, inverse.gaussian, gaussian).

        Raises
        ------
        DataError
            Naming the response: values that are missing or infinite; binomial values outside
            [0, 1], a non-integer number of successes ``weights * y`` (R warns "non-integer
            #successes in a binomial glm!"), non-integer or negative counts in the two-column
            form, or more than two columns; negative or non-integer poisson counts; non-positive
            Gamma or inverse.gaussian values; a gaussian-log response with ``y <= 0`` or a
            gaussian-inverse one with ``y == 0`` and no starting values. Weights of the wrong
            length, negative or not finite (naming ``weights``).
        """
        fam = self.name
        arr = np.asarray(y)
        if arr.dtype.kind == "b":
            arr = arr.astype(float)
        if arr.dtype.kind not in "iuf":
            raise DataError(f"the response {name!r} must be numeric for the {fam} family, got dtype {arr.dtype}")
        arr = np.array(arr, dtype=float)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        two_column = arr.ndim == 2 and arr.shape[1] == 2
        if arr.ndim == 0 or arr.ndim > 2 or (arr.ndim == 2 and not (two_column and fam == "binomial")):
            if fam == "binomial":
                raise DataError(
                    f"for the binomial family, the response {name!r} must be a vector of 0 and 1's (or proportions, "
                    f"with the trials as weights) or a 2-column array (successes, failures); got shape {arr.shape}"
                )
            raise DataError(f"the response {name!r} must be a vector for the {fam} family; got shape {arr.shape}")
        nobs = arr.shape[0]
        if weights is None:
            w = np.ones(nobs)
        else:
            try:
                w = validate.real_array(weights, "weights", length=nobs, finite=True)
            except ArgumentError as exc:
                raise DataError(str(exc)) from None
            if np.any(w < 0):
                raise DataError(f"weights must be non-negative; {_first_bad(w, w < 0)} (response {name!r})")
        finite = np.isfinite(arr)
        if not finite.all():
            raise DataError(f"the response {name!r} has missing or infinite values: {_first_bad(arr, ~finite)}")

        if fam == "binomial":
            if two_column:
                frac = np.abs(arr - np.rint(arr)) > 1e-3
                if frac.any():
                    raise DataError(
                        f"non-integer counts in the binomial response {name!r} (successes, failures): "
                        f"{_first_bad(arr, frac)}"
                    )
                if np.any(arr < 0):
                    raise DataError(
                        f"negative counts in the binomial response {name!r} (successes, failures): "
                        f"{_first_bad(arr, arr < 0)}"
                    )
                n = arr[:, 0] + arr[:, 1]
                with np.errstate(invalid="ignore"):
                    yy = arr[:, 0] / n
                yy[n == 0] = 0.0
                w = w * n
                mustart = (n * yy + 0.5) / (n + 1)
                return yy, w, n, mustart
            n = np.ones(nobs)
            yy = arr.copy()
            yy[w == 0] = 0.0
            out = (yy < 0) | (yy > 1)
            if out.any():
                raise DataError(
                    f"the binomial response {name!r} must hold values 0 <= y <= 1 (0/1, or proportions with the trials "
                    f"as weights); {_first_bad(yy, out)}"
                )
            mustart = (w * yy + 0.5) / (w + 1)
            m = w * yy
            frac = np.abs(m - np.rint(m)) > 1e-3
            if frac.any():
                raise DataError(
                    f"non-integer #successes in the binomial response {name!r}: weights * {name} has "
                    f"{_first_bad(m, frac)} (a proportion needs its number of trials as the weights)"
                )
            return yy, w, n, mustart
        n = np.ones(nobs)
        if fam == "poisson":
            neg = arr < 0
            if neg.any():
                raise DataError(f"negative values not allowed for the poisson family: the response {name!r} has "
                                f"{_first_bad(arr, neg)}")
            frac = _nonint(arr)
            if frac.any():
                raise DataError(f"non-integer counts in the poisson response {name!r}: {_first_bad(arr, frac)}")
            return arr, w, n, arr + 0.1
        if fam in ("Gamma", "inverse.gaussian"):
            bad = arr <= 0
            if bad.any():
                raise DataError(
                    f"non-positive values not allowed for the {fam} family: the response {name!r} has "
                    f"{_first_bad(arr, bad)}"
                )
            return arr, w, n, arr.copy()
        # gaussian
        if not have_start:
            if self.link.name == "inverse" and np.any(arr == 0):
                raise DataError(
                    f"cannot find valid starting values for the gaussian family with the inverse link: the response "
                    f"{name!r} has {_first_bad(arr, arr == 0)} equal to 0; please specify some"
                )
            if self.link.name == "log" and np.any(arr <= 0):
                raise DataError(
                    f"cannot find valid starting values for the gaussian family with the log link: the response "
                    f"{name!r} has {_first_bad(arr, arr <= 0)} not positive; please specify some"
                )
        return arr, w, n, arr.copy()


def family(spec: Union[str, Family, Callable[..., Family]], link: Union[str, Link, None] = None) -> Family:
    """The :class:`Family` of a name (R's ``binomial()``, ``poisson(link = "sqrt")``, ...).

    Parameters
    ----------
    spec : str, Family or one of this module's family functions
        ``"binomial"``, ``"poisson"``, ``"Gamma"``, ``"inverse_gaussian"`` (or R's
        ``"inverse.gaussian"``), ``"gaussian"`` — case, ``-`` and ``_`` aside; a
        :class:`Family` (returned as it is when ``link`` is None); or a function such as
        :func:`binomial` (called with ``link``), as R's ``family = binomial``.
    link : str or Link, optional
        One of the links the family takes (:data:`FAMILY_LINKS`); R's default
        (:data:`DEFAULT_LINKS`) when None.

    Returns
    -------
    Family

    Raises
    ------
    ArgumentError
        An unknown family (the message lists the five) or a link the family does not take (the
        message lists the ones it does).

    Examples
    --------
    >>> family("binomial")
    binomial(link='logit')
    >>> family("inverse_gaussian").link.name
    '1/mu^2'
    """
    if isinstance(spec, Family):
        return spec if link is None else family(spec.name, link)
    if callable(spec) and not isinstance(spec, str):
        spec = next((fam for fn, fam in _CONSTRUCTORS.items() if fn is spec), spec)
    if not isinstance(spec, str):
        raise ArgumentError(
            f"family must be one of {_quoted(tuple(FAMILY_LINKS))} or a Family, got {spec!r} ({type(spec).__name__})"
        )
    name = validate.choice(spec, "family", _FAMILY_NAMES)
    ok = FAMILY_LINKS[name]
    if link is None:
        link = DEFAULT_LINKS[name]
    if isinstance(link, Link):
        link_name = link.name
    elif isinstance(link, str):
        link_name = link
    else:
        raise ArgumentError(
            f"link must be one of {_quoted(ok)} for the {name} family, got {link!r} ({type(link).__name__})"
        )
    if link_name not in ok:
        raise ArgumentError(
            f"link {link_name!r} not available for the {name} family; available links are {_quoted(ok)}"
        )
    return Family(name, Link(link_name))


def binomial(link: Union[str, Link] = "logit") -> Family:
    """R's ``binomial(link = "logit")``; links: logit, probit, cloglog, cauchit, log.

    Parameters
    ----------
    link : str or Link

    Returns
    -------
    Family
    """
    return family("binomial", link)


def poisson(link: Union[str, Link] = "log") -> Family:
    """R's ``poisson(link = "log")``; links: log, identity, sqrt.

    Parameters
    ----------
    link : str or Link

    Returns
    -------
    Family
    """
    return family("poisson", link)


def Gamma(link: Union[str, Link] = "inverse") -> Family:  # noqa: N802 - R's name
    """R's ``Gamma(link = "inverse")``; links: inverse, identity, log.

    Parameters
    ----------
    link : str or Link

    Returns
    -------
    Family
    """
    return family("Gamma", link)


def inverse_gaussian(link: Union[str, Link] = "1/mu^2") -> Family:
    """R's ``inverse.gaussian(link = "1/mu^2")``; links: 1/mu^2, inverse, identity, log.

    Parameters
    ----------
    link : str or Link

    Returns
    -------
    Family
    """
    return family("inverse.gaussian", link)


def gaussian(link: Union[str, Link] = "identity") -> Family:
    """R's ``gaussian(link = "identity")``; links: identity, log, inverse.

    Parameters
    ----------
    link : str or Link

    Returns
    -------
    Family
    """
    return family("gaussian", link)


_CONSTRUCTORS: dict[Callable[..., Family], str] = {
    binomial: "binomial",
    poisson: "poisson",
    Gamma: "Gamma",
    inverse_gaussian: "inverse.gaussian",
    gaussian: "gaussian",
}
