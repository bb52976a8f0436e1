# The optimum of an lmer model, refined, for the reference generators of this directory (sourced by
# lmertest_reference.R, broom_reference.R and varcorr_reference.R; they define `tight`, the
# lmerControl of a tight nloptwrap search): lme4's deviance function (mkLmerDevfun) from the tight
# fit's theta, by Newton steps on numDeriv's gradient and Hessian (coordinates at a bound stay
# there), each step kept only if it lowers the deviance; the model is then made at that theta
# (mkMerMod).  With data_name, the model gets a call that lmerTest's update() can refit from
# (ranova, drop1, and the Satterthwaite df of a weighted fit), its weights and offset included.
refined_fit <- function(formula, data_name, REML, contrasts = NULL, weights = NULL, offset = NULL,
                        data = get(data_name)) {
  wts <- if (is.null(weights)) NULL else data[[weights]]
  off <- if (is.null(offset)) NULL else data[[offset]]
  lf <- lFormula(as.formula(formula), data = data, REML = REML, contrasts = contrasts, weights = wts, offset = off)
  devfun <- do.call(mkLmerDevfun, lf)
  opt <- optimizeLmer(devfun, optimizer = "nloptwrap", control = tight$optCtrl)
  theta <- opt$par
  lower <- lf$reTrms$lower
  for (it in 1:8) {
    free <- !(theta <= lower + 1e-10 & lower == 0)
    if (!any(free)) break
    f <- function(x) { t <- theta; t[free] <- x; devfun(t) }
    g <- numDeriv::grad(f, theta[free])
    H <- numDeriv::hessian(f, theta[free])
    step <- tryCatch(solve(H, g), error = function(e) rep(0, sum(free)))
    cand <- theta; cand[free] <- pmax(theta[free] - step, lower[free])
    if (devfun(cand) < devfun(theta)) theta <- cand else break
  }
  opt <- list(par = theta, fval = devfun(theta), conv = 0, message = "refined", feval = NA)
  m <- mkMerMod(environment(devfun), opt, lf$reTrms, fr = lf$fr)
  if (!is.null(data_name)) {
    m@call <- call("lmer", formula = as.formula(formula), data = as.name(data_name), REML = REML,
                   control = quote(tight), contrasts = contrasts)
    if (!is.null(weights)) m@call$weights <- as.name(weights)
    if (!is.null(offset)) m@call$offset <- as.name(offset)
  }
  m
}
