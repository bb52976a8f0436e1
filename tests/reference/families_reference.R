# R's GLM families (stats, R 4.2) evaluated for sparselmm.families (issue 22, glmer).
#
# Makes:  tests/reference/families.json
# Run:    cd /work/main && Rscript tests/reference/families_reference.R tests/reference/families.json
#         (made with R 4.2.2 and jsonlite 1.8.4; needs only base R and jsonlite)
#
# Numbers are written with 17 significant digits (sprintf("%.17g"), read back exactly; jsonlite's
# own digits = NA stops at 15) and non-finite values as the strings "Inf", "-Inf", "NaN", "NA".
#
# Top-level keys of the JSON:
#   versions    R and jsonlite versions
#   constants   .Machine$double.eps and the thresholds of make.link's probit and cauchit
#   links       per link (make.link's nine): linkinv, mu.eta and valideta over a grid of eta
#               (eta = +-800, +-30, ... where the link takes them), linkfun over a grid of mu
#               (mu = 0, 1e-300, eps, ..., 1 - eps, 1 for the links of a probability)
#   pairs       per family x link R accepts: eta over the range the pair is valid on, mu =
#               linkinv(eta), a response y, weights wt and n for it, and linkfun(mu), mu.eta(eta),
#               variance(mu), dev.resids(y, mu, wt), dev = sum of them, aic(y, n, mu, wt, dev),
#               validmu(mu), valideta(eta)
#   variance    per family: variance over a grid of mu
#   dev_resids  per family: dev.resids over the outer grid of y x mu (weights cycling)
#   aic         per family: aic for cases built to reach its branches (binomial: 0/1 responses,
#               proportions with n > 1, non-integer prior weights, zero weights, mu near 0 and 1
#               with large n; poisson: zero and large counts, weights; Gamma: dispersions giving
#               dgamma shapes below 1, between 1 and 15 (stirlerr's lgamma branch) and beyond
#               (each of its series); inverse.gaussian; gaussian with weights), and simulated
#               responses of 300 observations per family (set.seed(22))
#   initialize  family$initialize evaluated as glm.fit does (y, weights, nobs; the binomial's
#               two-column cbind(successes, failures) form included): y, weights, n, mustart after
suppressPackageStartupMessages(library(jsonlite))
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "families.json"

# ---- exact JSON numbers --------------------------------------------------------------------
enc1 <- function(x) {
  if (is.na(x) && !is.nan(x)) return("\"NA\"")
  if (is.nan(x)) return("\"NaN\"")
  if (!is.finite(x)) return(if (x > 0) "\"Inf\"" else "\"-Inf\"")
  sprintf("%.17g", x)
}
num <- function(x) structure(paste0("[", paste(vapply(as.numeric(x), enc1, ""), collapse = ", "), "]"),
                             class = "json")
sc <- function(x) structure(enc1(as.numeric(x)), class = "json")
mat <- function(m) structure(paste0("[", paste(apply(m, 1, function(r) num(r)), collapse = ", "), "]"),
                             class = "json")
eps <- .Machine$double.eps

fam_of <- function(name, link) switch(name,
  binomial = binomial(link = link), poisson = poisson(link = link), Gamma = Gamma(link = link),
  inverse.gaussian = inverse.gaussian(link = link), gaussian = gaussian(link = link))

ok_links <- list(
  binomial = c("logit", "probit", "cloglog", "cauchit", "log"),
  poisson = c("log", "identity", "sqrt"),
  Gamma = c("inverse", "identity", "log"),
  inverse.gaussian = c("1/mu^2", "inverse", "identity", "log"),
  gaussian = c("identity", "log", "inverse"))

# ---- links -----------------------------------------------------------------------------------
eta_all <- c(-800, -710, -700, -35, -30.5, -30, -29.999, -20, -10, -8.2, -8.125890664701906, -8, -6,
             -5, -4.5, -2, -1, -0.1, -1e-10, 0, 1e-10, 0.1, 0.5, 1, 2, 3, 4.5, 5, 6, 8, 8.2, 10, 20,
             29.999, 30, 30.5, 35, 37, 38, 100, 700, 710, 800, 1e15, -1e15, 1e300, -1e300)
eta_pos <- c(1e-300, 1e-100, 1e-10, 1e-3, 0.1, 0.5, 1, 2, 4.5, 10, 30, 800, 1e10, 1e100, 1e300)
eta_of <- list(logit = eta_all, probit = eta_all, cauchit = eta_all, cloglog = eta_all,
               identity = eta_all, log = eta_all, sqrt = c(0, eta_pos), `1/mu^2` = eta_pos,
               inverse = c(-rev(eta_pos), eta_pos))
mu_prob <- c(0, 1e-300, 1e-200, 1e-20, 1e-16, eps, 2 * eps, 1e-12, 1e-8, 1e-4, 0.01, 0.1, 0.2, 0.25,
             1 / 3, 0.5, 0.6, 0.75, 0.9, 0.99, 0.9999, 1 - 1e-8, 1 - 1e-12, 1 - 2 * eps, 1 - eps,
             1 - eps / 2, 1)
mu_pos <- c(1e-300, 1e-100, 1e-16, 1e-10, 1e-3, 0.1, 0.5, 1, 2, 2.5, 10, 123.456, 1e5, 1e10, 1e100,
            1e300)
mu_of <- list(logit = mu_prob, probit = mu_prob, cauchit = mu_prob, cloglog = mu_prob,
              identity = c(-1e300, -2.5, -1e-10, 0, mu_pos), log = mu_pos, sqrt = c(0, mu_pos),
              `1/mu^2` = mu_pos, inverse = c(-rev(mu_pos), mu_pos))

links <- list()
for (ln in names(eta_of)) {
  lk <- make.link(ln)
  eta <- eta_of[[ln]]
  mu <- mu_of[[ln]]
  links[[ln]] <- list(
    eta = num(eta), linkinv = num(lk$linkinv(eta)), mu_eta = num(lk$mu.eta(eta)),
    valideta = lk$valideta(eta),
    valideta_cases = lapply(list(c(1, 2), c(-1, 1), c(0, 1), c(1, Inf), c(1, NaN)),
                            function(e) list(eta = num(e), value = isTRUE(lk$valideta(e)))),
    mu = num(mu), linkfun = num(lk$linkfun(mu)))
}

# ---- family x link pairs ---------------------------------------------------------------------
pair_eta <- function(fam, ln) {
  if (fam == "binomial" && ln == "log") return(c(-800, -40, -30, -5, -1, -0.1, -1e-8, 0))
  if (ln %in% c("logit", "probit", "cauchit", "cloglog"))
    return(c(-800, -30.5, -30, -20, -8.2, -8, -5, -1, 0, 1, 5, 8, 8.2, 20, 30, 30.5, 800))
  if (ln == "log") {
    if (fam == "poisson") return(c(-800, -30, -5, -1, 0, 1, 2.5, 5, 20, 300))
    return(c(-800, -30, -5, -1, 0, 1, 2.5, 5, 20, 100))
  }
  if (ln == "identity" && fam == "gaussian") return(c(-1e5, -30, -2.5, 0, 1, 2.5, 30, 1e5))
  if (ln == "inverse" && fam == "gaussian") return(c(-5, -0.1, 1e-8, 0.01, 0.5, 1, 5, 1e8))
  c(1e-8, 1e-3, 0.01, 0.5, 1, 2.5, 5, 100, 1e6)       # identity, sqrt, inverse, 1/mu^2
}
pair_y <- function(fam, k) {
  v <- switch(fam,
    binomial = c(0, 1, 1, 0, 1),
    poisson = c(0, 1, 3, 10, 0, 250, 2),
    Gamma = c(0.5, 1, 2.5, 10, 1e-3, 7),
    inverse.gaussian = c(0.5, 1, 2.5, 10, 1e-3, 7),
    gaussian = c(-1, 0, 2.5, 10, 0.25))
  rep_len(v, k)
}
pair_wt <- function(fam, k) rep_len(switch(fam, binomial = 1, c(1, 2, 0.5, 1, 3)), k)

pairs <- list()
for (fam in names(ok_links)) for (ln in ok_links[[fam]]) {
  f <- fam_of(fam, ln)
  eta <- pair_eta(fam, ln)
  mu <- f$linkinv(eta)
  y <- pair_y(fam, length(eta))
  wt <- pair_wt(fam, length(eta))
  n <- rep(1, length(eta))
  dr <- f$dev.resids(y, mu, wt)
  dev <- sum(dr)
  pairs[[length(pairs) + 1]] <- list(
    family = fam, link = ln, canonical_link = fam_of(fam, formals(get(fam))$link)$link == ln,
    eta = num(eta), mu = num(mu), y = num(y), wt = num(wt), n = num(n),
    linkfun = num(f$linkfun(mu)), linkinv = num(mu), mu_eta = num(f$mu.eta(eta)),
    variance = num(f$variance(mu)), dev_resids = num(dr), dev = sc(dev),
    aic = sc(f$aic(y, n, mu, wt, dev)), validmu = f$validmu(mu), valideta = f$valideta(eta))
}

# ---- variance and dev.resids over grids ----------------------------------------------------------
mu_fam <- list(binomial = mu_prob[-c(1, length(mu_prob))], poisson = mu_pos, Gamma = mu_pos,
               inverse.gaussian = mu_pos, gaussian = c(-2.5, 0, mu_pos))
y_fam <- list(binomial = c(0, 1e-10, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1 - 1e-10, 1),
              poisson = c(0, 1e-300, 0.5, 1, 2, 5, 17, 1000, 1e6),
              Gamma = c(0, 1e-300, 1e-5, 0.5, 1, 3, 1e4, 1e300),
              inverse.gaussian = c(1e-300, 1e-5, 0.5, 1, 3, 1e4, 1e100),
              gaussian = c(-1e5, -1, 0, 0.5, 3, 1e100))
variance <- list()
dev_resids <- list()
for (fam in names(mu_fam)) {
  f <- fam_of(fam, ok_links[[fam]][1])
  mu <- mu_fam[[fam]]
  variance[[fam]] <- list(mu = num(mu), value = num(f$variance(mu)))
  g <- expand.grid(mu = mu, y = y_fam[[fam]])
  wt <- rep_len(c(1, 2.5, 0, 0.1, 7), nrow(g))
  dev_resids[[fam]] <- list(y = num(g$y), mu = num(g$mu), wt = num(wt),
                            value = num(f$dev.resids(g$y, g$mu, wt)))
}

# ---- aic cases ------------------------------------------------------------------------------------
aic_cases <- list()
add_aic <- function(fam, case, y, n, mu, wt) {
  f <- fam_of(fam, ok_links[[fam]][1])
  dev <- sum(f$dev.resids(y, mu, wt))
  aic_cases[[length(aic_cases) + 1]] <<- list(
    family = fam, case = case, y = num(y), n = num(n), mu = num(mu), wt = num(wt), dev = sc(dev),
    value = sc(f$aic(y, n, mu, wt, dev)))
}
mu_b <- c(1e-12, 1e-6, 0.01, 0.2, 0.5, 0.7, 0.99, 1 - 1e-6, 1 - 1e-12)
k <- length(mu_b)
add_aic("binomial", "binary", rep_len(c(0, 1, 1), k), rep(1, k), mu_b, rep(1, k))
add_aic("binomial", "binary_zero_y_extremes", c(0, 0, 1, 1), rep(1, 4), c(1e-12, 1 - 1e-12, 1e-12, 1 - 1e-12),
        rep(1, 4))
nn <- c(5, 10, 3, 1, 20, 7, 2, 100, 1e6)
kk <- c(2, 0, 3, 1, 11, 7, 1, 50, 1e6 - 3)
add_aic("binomial", "proportions", kk / nn, nn, mu_b, nn)
add_aic("binomial", "proportions_prior_weights", kk / nn, nn, mu_b, nn * rep_len(c(1, 2, 0.5), k))
add_aic("binomial", "weights_as_trials", c(0.5, 1 / 3, 0, 1, 0.25, 0.6), rep(1, 6),
        c(0.3, 0.5, 0.1, 0.9, 0.2, 0.55), c(2, 3, 4, 1, 4, 5))
add_aic("binomial", "zero_weight", c(0.5, 0, 1, 0.4), c(2, 0, 1, 5), c(0.3, 0.5, 0.8, 0.45), c(2, 0, 1, 5))
add_aic("binomial", "large_n_extremes", c(0, 1, 1e-6, 1 - 1e-6, 0.5), rep(1e6, 5),
        c(1e-9, 1 - 1e-9, 2e-6, 1 - 1e-7, 0.5 + 1e-4), rep(1e6, 5))
add_aic("binomial", "half_rounding", c(0.5, 0.5, 0.25), c(1, 1, 2), c(0.4, 0.6, 0.3), c(1, 3, 2))

add_aic("poisson", "counts", c(0, 1, 2, 5, 17, 0, 1000, 1e5), rep(1, 8),
        c(0.5, 1, 2.5, 4, 20, 1e-10, 990, 1e5 + 300), rep(1, 8))
add_aic("poisson", "weights", c(0, 1, 2, 5, 17, 3), rep(1, 6), c(0.1, 1.5, 2.5, 4, 20, 3),
        c(1, 2.5, 0, 0.1, 7, 1))
add_aic("poisson", "extremes", c(0, 0, 1, 3, 1e6, 2e9), rep(1, 6), c(1e-300, 700, 1e-200, 1e200, 1e6, 2e9 - 1),
        rep(1, 6))

gy <- c(0.5, 1, 2.5, 10, 1e-3, 7, 3.2, 0.75)
add_aic("Gamma", "moderate", gy, rep(1, 8), c(0.6, 1.2, 2, 9, 0.01, 6, 3, 1), rep(1, 8))
add_aic("Gamma", "small_dispersion", gy, rep(1, 8), gy * (1 + c(1e-3, -2e-3, 1e-3, 5e-4, -1e-3, 2e-3, 0, 1e-3)),
        c(1, 2, 0.5, 1, 3, 1, 1, 2))
add_aic("Gamma", "large_dispersion", gy, rep(1, 8), c(50, 1e-3, 100, 1e-4, 10, 1e4, 1, 200), rep(1, 8))
add_aic("Gamma", "weights", gy, rep(1, 8), c(0.6, 1.2, 2, 9, 0.01, 6, 3, 1), c(1, 2.5, 0, 0.1, 7, 1, 2, 3))
for (s in c(0.3, 1, 1.5, 2.25, 3, 7.7, 14.5, 15.25, 20, 40, 100, 600)) {
  # mu = c * y with the unit deviance 2 (log c + 1/c - 1) = 1/s: dispersion dev/sum(wt) ~ 1/s, so
  # the dgamma shape 1/disp ~ s reaches each branch of stirlerr (and dgamma's shape < 1)
  cc <- uniroot(function(c) 2 * (log(c) + 1 / c - 1) - 1 / s, c(1, 1e6), tol = 1e-14)$root
  y <- c(1, 2, 3, 4)
  add_aic("Gamma", sprintf("shape_%g", s), y, rep(1, 4), y * cc, c(1, 2, 1, 0.5))
}

# simulated responses of 300 observations: many values of each density's arguments at once
set.seed(22)
k <- 300
sz <- sample(c(1:30, 100, 1000), k, replace = TRUE)
pr <- plogis(rnorm(k, sd = 3))
add_aic("binomial", "simulated_trials", rbinom(k, sz, pr) / sz, sz, pr, sz)
add_aic("binomial", "simulated_binary", rbinom(k, 1, pr), rep(1, k), pr, rep(1, k))
lam <- exp(rnorm(k, 1, 2))
add_aic("poisson", "simulated", rpois(k, lam), rep(1, k), lam * exp(rnorm(k, 0, 0.2)), rep(1, k))
gm <- exp(rnorm(k))
add_aic("Gamma", "simulated_shape_2", rgamma(k, 2, scale = gm / 2), rep(1, k), gm, rep(1, k))
add_aic("Gamma", "simulated_shape_0.5", rgamma(k, 0.5, scale = gm / 0.5), rep(1, k), gm, runif(k, 0.5, 2))
add_aic("inverse.gaussian", "simulated", gm * exp(rnorm(k, 0, 0.3)), rep(1, k), gm, rep(1, k))
add_aic("gaussian", "simulated", gm + rnorm(k), rep(1, k), gm, runif(k, 0.5, 2))

add_aic("inverse.gaussian", "moderate", gy, rep(1, 8), c(0.6, 1.2, 2, 9, 0.01, 6, 3, 1), rep(1, 8))
add_aic("inverse.gaussian", "weights", gy, rep(1, 8), c(0.6, 1.2, 2, 9, 0.01, 6, 3, 1),
        c(1, 2.5, 0.5, 0.1, 7, 1, 2, 3))
add_aic("gaussian", "moderate", c(-1, 0, 2.5, 10, 0.25, 3), rep(1, 6), c(-0.5, 0.2, 2, 9, 0.3, 3.5), rep(1, 6))
add_aic("gaussian", "weights", c(-1, 0, 2.5, 10, 0.25, 3), rep(1, 6), c(-0.5, 0.2, 2, 9, 0.3, 3.5),
        c(1, 2.5, 0.5, 0.1, 7, 1))

# ---- initialize ---------------------------------------------------------------------------------
init_cases <- list()
add_init <- function(fam, ln, y, weights) {
  family <- fam_of(fam, ln)
  env <- new.env()
  env$y <- y; env$weights <- weights; env$nobs <- NROW(y); env$family <- family
  env$etastart <- NULL; env$start <- NULL; env$mustart <- NULL
  eval(family$initialize, env)
  init_cases[[length(init_cases) + 1]] <<- list(
    family = fam, link = ln, y_in = if (is.matrix(y)) mat(y) else num(y), weights_in = num(weights),
    y = num(env$y), weights = num(env$weights), n = num(env$n), mustart = num(env$mustart))
}
add_init("binomial", "logit", c(0, 1, 1, 0, 1), rep(1, 5))
add_init("binomial", "probit", c(0, 0.5, 1, 0.25, 1 / 3), c(1, 2, 3, 4, 3))
add_init("binomial", "logit", c(0, 0.5, 1, 7, 0.25), c(1, 2, 3, 0, 4))   # y of a zero weight set to 0
add_init("binomial", "logit", cbind(c(2, 0, 3, 0, 10), c(3, 4, 0, 0, 90)), rep(1, 5))
add_init("binomial", "cloglog", cbind(c(2, 0, 3, 1), c(3, 4, 0, 1)), c(1, 2, 0.5, 1))
add_init("poisson", "log", c(0, 1, 2, 10, 1000), rep(1, 5))
add_init("poisson", "sqrt", c(0, 1, 2, 10, 1000), c(1, 2, 0.5, 1, 3))
add_init("Gamma", "inverse", c(0.5, 1, 2.5, 1e-3), rep(1, 4))
add_init("inverse.gaussian", "1/mu^2", c(0.5, 1, 2.5, 1e-3), c(1, 2, 3, 4))
add_init("gaussian", "identity", c(-1, 0, 2.5), rep(1, 3))
add_init("gaussian", "log", c(1, 0.5, 2.5), rep(1, 3))

out <- list(
  versions = list(R = R.version.string, jsonlite = as.character(packageVersion("jsonlite"))),
  constants = list(eps = sc(eps), probit_thresh = sc(-qnorm(eps)), cauchit_thresh = sc(-qcauchy(eps))),
  links = links, pairs = pairs, variance = variance, dev_resids = dev_resids, aic = aic_cases,
  initialize = init_cases)
writeLines(toJSON(out, json_verbatim = TRUE, auto_unbox = TRUE, pretty = TRUE), out_file)

# the numbers read back exactly
back <- fromJSON(out_file, simplifyVector = TRUE)
stopifnot(identical(back$constants$probit_thresh, -qnorm(eps)),
          identical(back$links$logit$linkinv, make.link("logit")$linkinv(eta_all)))
