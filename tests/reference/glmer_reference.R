# lme4 glmer reference values for sparselmm's GLMM implementation (issue 22).
#
# Run from the project root:
#   Rscript tests/reference/glmer_reference.R tests/reference/glmer_reference.json
#   Rscript tests/reference/glmer_reference.R tests/reference/glmer_reference.json --export-data
# (made with R 4.2, lme4 1.1-31, mlmRev, minqa, nloptr, statmod)
#
# --export-data first (re)writes datasets/{cbpp,grouseticks,VerbAgg,Arabidopsis,
# Contraception}.csv from lme4's / mlmRev's copies (write.csv, as the other
# bundled files).  Every run then READS THOSE CSV FILES (not the packages'
# in-memory copies, so that R and Python fit identical numbers), rebuilds the
# factors with the level orders of the packages' copies (LEVELS below; the JSON's
# "datasets" section lists every level in that order) and checks that the
# rebuilt frame equals the package's copy.  The synthetic data sets
# (tests/reference/glmer_*_sim.csv) are drawn with set.seed() here, written
# with values rounded to multiples of 2^-16 (exact decimals), and read back
# from the CSV before fitting.
#
# For each model: the default glmer fit (glmerControl(): bobyqa for stage 1,
# Nelder_Mead for stage 2) and three tight refits (bobyqa with maxfun = 1e5;
# nloptwrap/BOBYQA with tight tolerances; the same with tolPwrss = 1e-12),
# warnings and messages captured; every fit's objective also re-evaluated with
# a converged PIRLS ("objective_converged", see "deviance probes" below);
# probes of lme4's deviance functions built with glFormula / mkGlmerDevfun /
# updateGlmerDevfun exactly as glmer() builds them.
#
# Run-to-run note: grouseticks_poisson's default (Nelder-Mead) fit has two
# outcomes from run to run even with one BLAS thread (theta differs by ~1e-5
# relative, lme4's objective by ~1e-12 relative, deviance(m) by ~5e-6); all
# other numbers are reproducible.
#
# Numbers are written with the shortest of %.15g/%.16g/%.17g that reads back
# as the same double (jsonlite's toJSON caps numbers at 15 significant digits
# even with digits = NA, so this script has its own small JSON writer).
# NA, NaN and Inf are written as null.
#
# JSON layout: see the comment above `out <- list(` at the end of this file.
# One BLAS thread: with multi-threaded OpenBLAS the default fits' last digits
# (and the Nelder-Mead path) change from run to run.  The variable must be set
# before R loads BLAS, so the script re-runs itself with it.
if (Sys.getenv("OPENBLAS_NUM_THREADS") != "1") {
  Sys.setenv(OPENBLAS_NUM_THREADS = "1", OMP_NUM_THREADS = "1")
  self <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
  status <- system2(file.path(R.home("bin"), "Rscript"), c(shQuote(self), shQuote(commandArgs(TRUE))))
  quit(save = "no", status = status)
}
suppressPackageStartupMessages({
  library(lme4); library(mlmRev); library(jsonlite)
})

args <- commandArgs(TRUE)
out_file <- if (length(args) && !startsWith(args[1], "--")) args[1] else
  file.path("tests", "reference", "glmer_reference.json")
export_data <- "--export-data" %in% args
root <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) normalizePath(file.path(dirname(sub("^--file=", "", a[1])), "..", ".."))
  else getwd()
})
data_dir <- file.path(root, "datasets")
ref_dir <- file.path(root, "tests", "reference")

# ---------------------------------------------------------------- JSON writer
num_str <- function(x) {
  if (is.na(x) || is.infinite(x)) return("null")
  if (x == 0) return("0")
  if (x == round(x) && abs(x) < 1e15) return(sprintf("%.0f", x))
  for (d in 15:16) {
    s <- sprintf(paste0("%.", d, "g"), x)
    if (as.numeric(s) == x) return(s)
  }
  sprintf("%.17g", x)
}
str_json <- function(s) if (is.na(s)) "null" else as.character(jsonlite::toJSON(s, auto_unbox = TRUE))
scalar_json <- function(x) {
  if (is.logical(x)) return(if (is.na(x)) "null" else if (x) "true" else "false")
  if (is.numeric(x)) return(num_str(as.numeric(x)))
  str_json(as.character(x))
}
to_json <- function(x, ind = "") {
  ind2 <- paste0(ind, "  ")
  if (is.null(x)) return("null")
  if (is.factor(x)) x <- structure(as.character(x), names = names(x), class = class(x)[class(x) == "AsIs"])
  if (is.data.frame(x)) x <- lapply(as.list(x), function(col) I(if (is.factor(col)) as.character(col) else col))
  if (is.matrix(x) && is.atomic(x)) {
    rows <- lapply(seq_len(nrow(x)), function(i) I(unname(x[i, ])))
    return(to_json(rows, ind))
  }
  if (is.list(x)) {
    if (length(x) == 0) return(if (!is.null(names(x))) "{}" else "[]")
    if (!is.null(names(x)) && all(nzchar(names(x)))) {
      items <- vapply(seq_along(x), function(i)
        paste0(ind2, str_json(names(x)[i]), ": ", to_json(x[[i]], ind2)), "")
      return(paste0("{\n", paste(items, collapse = ",\n"), "\n", ind, "}"))
    }
    items <- vapply(x, to_json, "", ind = ind2)
    return(paste0("[\n", paste0(ind2, items, collapse = ",\n"), "\n", ind, "]"))
  }
  asis <- inherits(x, "AsIs")
  if (!is.null(names(x)) && !asis) {
    return(to_json(as.list(x), ind))
  }
  x <- unclass(x)
  if (length(x) == 1 && !asis) return(scalar_json(x))
  if (length(x) == 0) return("[]")
  paste0("[", paste(vapply(x, scalar_json, ""), collapse = ", "), "]")
}

# ---------------------------------------------------------------- public data
PUBLIC <- list(
  cbpp = function() lme4::cbpp,
  grouseticks = function() lme4::grouseticks,
  VerbAgg = function() lme4::VerbAgg,
  Arabidopsis = function() lme4::Arabidopsis,
  Contraception = function() mlmRev::Contraception
)
# Level order of every factor column, as in the packages' copies:
#   "numeric": the labels sorted as numbers; "sorted": sorted bytewise (C
#   locale, = Python's sorted()); a character vector: that explicit order;
#   list(levels=, ordered=TRUE): an ordered factor.
# Columns not listed are numeric (integer or double) in R.
VA_ITEMS <- c("S1WantCurse", "S1WantScold", "S1WantShout", "S2WantCurse", "S2WantScold",
              "S2WantShout", "S3WantCurse", "S3WantScold", "S3WantShout", "S4wantCurse",
              "S4WantScold", "S4WantShout", "S1DoCurse", "S1DoScold", "S1DoShout",
              "S2DoCurse", "S2DoScold", "S2DoShout", "S3DoCurse", "S3DoScold",
              "S3DoShout", "S4DoCurse", "S4DoScold", "S4DoShout")
LEVELS <- list(
  cbpp = list(herd = "numeric", period = "numeric"),
  grouseticks = list(INDEX = "numeric", BROOD = "numeric", YEAR = "numeric", LOCATION = "numeric"),
  VerbAgg = list(Gender = "sorted", item = VA_ITEMS,
                 resp = list(levels = c("no", "perhaps", "yes"), ordered = TRUE),
                 id = "numeric", btype = "sorted", situ = "sorted", mode = c("want", "do"),
                 r2 = "sorted"),
  Arabidopsis = list(reg = "sorted", popu = "sorted", amd = "sorted", status = "sorted"),
  Contraception = list(woman = "numeric", district = "numeric", use = "sorted",
                       livch = "sorted", urban = "sorted")
)
level_order <- function(x, rule) {
  u <- unique(x)
  if (is.list(rule)) return(rule$levels)
  if (identical(rule, "numeric")) return(u[order(as.numeric(u))])
  if (identical(rule, "sorted")) return(sort(u, method = "radix"))
  rule
}
read_public <- function(name) {
  lv <- LEVELS[[name]]
  hdr <- names(read.csv(file.path(data_dir, paste0(name, ".csv")), nrows = 1, check.names = FALSE))
  cc <- ifelse(hdr %in% names(lv), "character", NA)
  d <- read.csv(file.path(data_dir, paste0(name, ".csv")), colClasses = cc,
                check.names = FALSE, stringsAsFactors = FALSE)
  for (n in names(lv)) {
    levs <- level_order(d[[n]], lv[[n]])
    stopifnot(setequal(levs, unique(d[[n]])))
    d[[n]] <- factor(d[[n]], levels = levs, ordered = is.list(lv[[n]]) && isTRUE(lv[[n]]$ordered))
  }
  d
}

if (export_data) {
  for (n in names(PUBLIC)) {
    write.csv(PUBLIC[[n]](), file.path(data_dir, paste0(n, ".csv")), row.names = FALSE)
    cat("wrote", file.path(data_dir, paste0(n, ".csv")), "\n")
  }
}

DATA <- list(); data_info <- list()
for (n in names(PUBLIC)) {
  d <- read_public(n)
  pkg <- PUBLIC[[n]]()
  stopifnot(identical(names(d), names(pkg)), nrow(d) == nrow(pkg))
  num_diff <- 0
  for (cn in names(d)) {
    if (is.factor(pkg[[cn]])) {
      stopifnot(identical(levels(d[[cn]]), levels(pkg[[cn]])),
                identical(as.integer(d[[cn]]), as.integer(pkg[[cn]])),
                identical(is.ordered(d[[cn]]), is.ordered(pkg[[cn]])))
    } else {
      stopifnot(!is.factor(d[[cn]]))
      num_diff <- max(num_diff, abs(as.numeric(d[[cn]]) - as.numeric(pkg[[cn]])))
    }
  }
  DATA[[n]] <- d
  data_info[[n]] <- list(
    file = paste0("datasets/", n, ".csv"), nrow = nrow(d), ncol = ncol(d),
    source = if (n == "Contraception") "mlmRev" else "lme4",
    matches_package_copy = TRUE,
    max_abs_numeric_diff_vs_package_copy = num_diff,
    columns = lapply(setNames(names(d), names(d)), function(cn) {
      x <- d[[cn]]
      if (is.factor(x)) {
        r <- LEVELS[[n]][[cn]]
        list(type = if (is.ordered(x)) "ordered factor" else "factor",
             level_rule = if (is.list(r)) "explicit (ordered)" else if (length(r) == 1 && r %in% c("numeric", "sorted")) r else "explicit",
             levels = I(levels(x)))
      } else list(type = class(pkg[[cn]])[1])
    })
  )
}

# ---------------------------------------------------------------- synthetic data
# Continuous simulated values are rounded to multiples of 2^-16 and written as
# their exact decimal expansion, so every CSV reader (R's R_strtod, which is not
# always correctly rounded, pandas, Python's float) gets the same double.
dyadic <- function(x) round(x * 65536) / 65536
exact_str <- function(x) {
  s <- sprintf("%.16f", x)
  s <- sub("0+$", "", s); sub("\\.$", "", s)
}
write_sim <- function(d, file) {
  out <- d
  for (n in names(out)) if (is.double(out[[n]])) {
    stopifnot(all(out[[n]] * 65536 == round(out[[n]] * 65536)))
    out[[n]] <- exact_str(out[[n]])
  }
  write.csv(out, file.path(ref_dir, file), row.names = FALSE, quote = FALSE)
  r <- read.csv(file.path(ref_dir, file), colClasses = c(g = "character"))
  for (n in names(d)) if (is.double(d[[n]])) stopifnot(identical(as.numeric(r[[n]]), d[[n]]))
  r$g <- factor(r$g, levels = unique(r$g)[order(as.numeric(sub("^g", "", unique(r$g))))])
  r
}
SIM <- list()
sim_info <- list()
local({
  set.seed(20220)
  ng <- 30; m <- 10
  g <- rep(seq_len(ng), each = m); x <- dyadic(rnorm(ng * m))
  b <- rnorm(ng, sd = 0.5); mu <- exp(1 + 0.5 * x + b[g]); shape <- 5
  y <- dyadic(rgamma(ng * m, shape = shape, rate = shape / mu))
  SIM$gamma_sim <<- write_sim(data.frame(g = sprintf("g%02d", g), x = x, y = y), "glmer_gamma_sim.csv")
  sim_info$gamma_sim <<- list(file = "tests/reference/glmer_gamma_sim.csv", synthetic = TRUE,
    description = "30 groups g01..g30 x 10 obs; x ~ N(0,1); b_g ~ N(0, 0.5^2); y ~ Gamma(shape 5, mean exp(1 + 0.5 x + b_g)) (continuous values rounded to multiples of 2^-16, written exactly)",
    seed = 20220, factor_levels = list(g = I(levels(SIM$gamma_sim$g))))
})
local({
  set.seed(20221)
  ng <- 40; m <- 8
  g <- rep(seq_len(ng), each = m); x <- dyadic(rnorm(ng * m))
  exposure <- dyadic(runif(ng * m, 0.5, 3))
  b <- rnorm(ng, sd = 0.6)
  y <- rpois(ng * m, exposure * exp(-0.3 + 0.4 * x + b[g]))
  SIM$poisson_offset_sim <<- write_sim(data.frame(g = sprintf("g%02d", g), x = x, exposure = exposure, y = y),
                                       "glmer_poisson_offset_sim.csv")
  sim_info$poisson_offset_sim <<- list(file = "tests/reference/glmer_poisson_offset_sim.csv", synthetic = TRUE,
    description = "40 groups g01..g40 x 8 obs; x ~ N(0,1); exposure ~ U(0.5, 3); b_g ~ N(0, 0.6^2); y ~ Poisson(exposure * exp(-0.3 + 0.4 x + b_g)) (continuous values rounded to multiples of 2^-16, written exactly)",
    seed = 20221, factor_levels = list(g = I(levels(SIM$poisson_offset_sim$g))))
})
local({
  set.seed(20222)
  ng <- 25; m <- 12
  g <- rep(seq_len(ng), each = m); x <- dyadic(rnorm(ng * m))
  b <- rnorm(ng, sd = 0.3); mu <- exp(0.5 + 0.3 * x + b[g])
  y <- dyadic(statmod::rinvgauss(ng * m, mean = mu, shape = 5))
  SIM$invgauss_sim <<- write_sim(data.frame(g = sprintf("g%02d", g), x = x, y = y), "glmer_invgauss_sim.csv")
  sim_info$invgauss_sim <<- list(file = "tests/reference/glmer_invgauss_sim.csv", synthetic = TRUE,
    description = "25 groups g01..g25 x 12 obs; x ~ N(0,1); b_g ~ N(0, 0.3^2); y ~ inverse Gaussian(mean exp(0.5 + 0.3 x + b_g), shape 5) (statmod::rinvgauss) (continuous values rounded to multiples of 2^-16, written exactly)",
    seed = 20222, factor_levels = list(g = I(levels(SIM$invgauss_sim$g))))
})

# model-specific derived columns (recorded as "transform" in the JSON)
TRANSFORMS <- list(
  arabidopsis = list(
    text = "nutrient, rack and gen made factors: factor(<integer column>), levels in numeric order (nutrient 1, 8; rack 1, 2; gen the 24 genotype numbers 4..36)",
    fun = function(d) { d$nutrient <- factor(d$nutrient); d$rack <- factor(d$rack); d$gen <- factor(d$gen); d }),
  obs = list(
    text = "obs = factor(seq_len(nrow(cbpp))) (levels 1..56 in numeric order), an observation-level random effect",
    fun = function(d) { d$obs <- factor(seq_len(nrow(d))); d })
)

# ---------------------------------------------------------------- models
spec <- function(id, data, formula, family, nAGQ = 1L, weights = NULL, offset = NULL,
                 transform = NULL, note = NULL)
  list(id = id, data = data, formula = formula, family = family, nAGQ = as.integer(nAGQ),
       weights = weights, offset = offset, transform = transform, note = note)
CB <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
MODELS <- list(
  spec("cbpp_binomial_laplace", "cbpp", CB, "binomial", 1),
  spec("cbpp_binomial_agq9", "cbpp", CB, "binomial", 9),
  spec("cbpp_binomial_agq25", "cbpp", CB, "binomial", 25),
  spec("cbpp_binomial_nagq0", "cbpp", CB, "binomial", 0),
  spec("cbpp_binomial_prop_weights", "cbpp", "incidence/size ~ period + (1 | herd)", "binomial", 1,
       weights = "size"),
  spec("cbpp_probit", "cbpp", CB, "binomial(link = \"probit\")", 1),
  spec("cbpp_binomial_obs_re", "cbpp",
       "cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs)", "binomial", 1,
       transform = "obs"),
  spec("grouseticks_poisson", "grouseticks",
       "TICKS ~ YEAR + cHEIGHT + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", 1),
  spec("verbagg_binomial", "VerbAgg", "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
       "binomial", 1),
  spec("contraception_urban_slope", "Contraception",
       "use ~ age + I(age^2) + urban + livch + (urban | district)", "binomial", 1),
  spec("arabidopsis_poisson", "Arabidopsis",
       "total.fruits ~ nutrient * amd + rack + status + (1 | popu) + (1 | gen)", "poisson", 1,
       transform = "arabidopsis"),
  spec("gamma_log_sim", "gamma_sim", "y ~ x + (1 | g)", "Gamma(link = \"log\")", 1),
  spec("poisson_offset_formula_sim", "poisson_offset_sim", "y ~ x + offset(log(exposure)) + (1 | g)",
       "poisson", 1),
  spec("poisson_offset_arg_sim", "poisson_offset_sim", "y ~ x + (1 | g)", "poisson", 1,
       offset = "log(exposure)", note = "same model as poisson_offset_formula_sim, offset given as glmer(offset = log(exposure))"),
  spec("invgauss_log_sim", "invgauss_sim", "y ~ x + (1 | g)", "inverse.gaussian(link = \"log\")", 1)
)

get_data <- function(s) {
  d <- if (!is.null(DATA[[s$data]])) DATA[[s$data]] else SIM[[s$data]]
  if (!is.null(s$transform)) d <- TRANSFORMS[[s$transform]]$fun(d)
  d
}
# the call glmer()/glFormula() would get from a user: weights/offset as expressions
# evaluated in the data (model.frame), the formula and family as given.
model_call <- function(fun, s, extra = list()) {
  a <- list(formula = as.formula(s$formula), data = quote(d), family = str2lang(s$family))
  if (!is.null(s$weights)) a$weights <- str2lang(s$weights)
  if (!is.null(s$offset)) a$offset <- str2lang(s$offset)
  as.call(c(fun, a, extra))
}
capture <- function(expr) {
  w <- character(); msg <- character()
  val <- withCallingHandlers(expr,
    warning = function(c) { w <<- c(w, conditionMessage(c)); invokeRestart("muffleWarning") },
    message = function(c) { msg <<- c(msg, sub("\n$", "", conditionMessage(c))); invokeRestart("muffleMessage") })
  list(value = val, warnings = w, messages = msg)
}
fit_model <- function(s, control = glmerControl()) {
  d <- get_data(s)
  cl <- model_call(quote(lme4::glmer), s, list(nAGQ = s$nAGQ, control = control))
  capture(eval(cl))
}

head10 <- function(x) I(unname(as.numeric(x)[seq_len(min(10, length(x)))]))
vcov_rows <- function(V) if (is.null(V)) NULL else unname(as.matrix(V))
summarise_fit <- function(m, cap) {
  vw <- character()
  vc <- function(...) tryCatch(withCallingHandlers(vcov(m, ...),
            warning = function(w) { vw <<- c(vw, conditionMessage(w)); invokeRestart("muffleWarning") }),
            error = function(e) { vw <<- c(vw, paste("error:", conditionMessage(e))); NULL })
  V_def <- vc(); V_hess <- vc(use.hessian = TRUE); V_rx <- vc(use.hessian = FALSE)
  se <- function(V) if (is.null(V)) NULL else setNames(sqrt(diag(as.matrix(V))), names(fixef(m)))
  hess_avail <- !is.null(h <- m@optinfo$derivs$Hessian) && nrow(h) > length(getME(m, "theta"))
  ll <- logLik(m)
  re <- as.data.frame(ranef(m, condVar = TRUE))
  re <- data.frame(grpvar = as.character(re$grpvar), term = as.character(re$term),
                   grp = as.character(re$grp), condval = re$condval, condsd = re$condsd)
  vcd <- as.data.frame(VarCorr(m))
  rtypes <- c("deviance", "pearson", "response", "working")
  conv <- m@optinfo$conv
  lme4msg <- conv$lme4$messages
  list(
    theta = getME(m, "theta"),
    beta = fixef(m),
    se = se(V_def),
    se_hessian = se(V_hess),
    se_rx = se(V_rx),
    vcov_default_uses_hessian = !is.null(V_hess) && !is.null(V_def) && isTRUE(all.equal(as.matrix(V_def), as.matrix(V_hess))),
    hessian_available = hess_avail,
    vcov_hessian = vcov_rows(V_hess),
    vcov_rx = vcov_rows(V_rx),
    vcov_warnings = I(vw),
    objective = unname(m@devcomp$cmp[["dev"]]),
    optinfo_val = I(unname(m@optinfo$val)),
    deviance = deviance(m),
    minus2logLik = -2 * as.numeric(ll),
    logLik = as.numeric(ll),
    logLik_df = attr(ll, "df"),
    AIC = AIC(m), BIC = BIC(m),
    nobs = nobs(m),
    df_residual = df.residual(m),
    sigma = sigma(m),
    devcomp_cmp = m@devcomp$cmp,
    ngrps = ngrps(m),
    feval = m@optinfo$feval,
    optimizer = I(m@optinfo$optimizer),
    optimizer_conv = conv$opt,
    optimizer_message = m@optinfo$message,
    lme4_conv_messages = I(if (is.null(lme4msg)) character() else lme4msg),
    lme4_conv_code = if (is.null(conv$lme4$code)) NULL else I(conv$lme4$code),
    optinfo_warnings = I(as.character(unlist(m@optinfo$warnings))),
    warnings = I(cap$warnings),
    messages = I(cap$messages),
    singular = isSingular(m),
    gradient = if (is.null(m@optinfo$derivs)) NULL else I(unname(m@optinfo$derivs$gradient)),
    hessian = if (is.null(m@optinfo$derivs)) NULL else unname(m@optinfo$derivs$Hessian),
    varcorr = data.frame(grp = vcd$grp, var1 = vcd$var1, var2 = vcd$var2, vcov = vcd$vcov, sdcor = vcd$sdcor),
    ranef = re,
    fitted_head = head10(fitted(m)),
    residuals_head = setNames(lapply(rtypes, function(t) head10(residuals(m, type = t))), rtypes),
    residuals_sumsq = setNames(lapply(rtypes, function(t) sum(residuals(m, type = t)^2)), rtypes),
    fitted_sum = sum(fitted(m))
  )
}
clean_flag <- function(sm) length(sm$warnings) == 0 && length(sm$lme4_conv_messages) == 0 &&
  identical(as.numeric(sm$optimizer_conv), 0)

# ---------------------------------------------------------------- deviance probes
# lme4's deviance functions, built exactly as glmer() builds them:
#   glmod <- glFormula(formula, data = d, family = fam [, weights = w] [, offset = o])
#   glmod$formula <- NULL
#   devfun1 <- do.call(mkGlmerDevfun, c(glmod, list(nAGQ = 0L, control = glmerControl(tolPwrss = tol))))
#   devfun1(theta)                                  # stage 1 (nAGQ = 0): PIRLS over (u, beta)
#   devfun2 <- updateGlmerDevfun(devfun1, glmod$reTrms, nAGQ = nAGQ)
#   devfun2(c(theta, beta))                         # stage 2: PIRLS over u, Laplace (nAGQ = 1) or AGQ
# (mkGlmerDevfun always returns the stage-1 function of theta when
#  nAGQ0initStep = TRUE, whatever its nAGQ argument; glmer() passes nAGQ = 0.)
# A fresh pair is built for every evaluation, so no value depends on the PIRLS
# state another evaluation left behind.
#
# lme4's value is not the exact Laplace/AGQ deviance at the conditional mode:
# pwrssUpdate stops when the relative change of the penalized deviance is below
# tolPwrss (1e-7) and the value uses the Cholesky factor L (log|L|^2) of the
# weights at the start of the last PIRLS iteration, so it is off by O(the last
# step) -- up to ~1e-2 on VerbAgg.  "converged" values: the same devfun with
# tolPwrss = 1e-12, then one more call of lme4's own PIRLS + Laplace/AGQ
# routine (environment(devfun)$pwrssUpdate, i.e. glmerLaplace / glmerAGQ) from
# the state the devfun left, without resetting mu, repeated until the value
# changes by < 1e-10: it starts at the mode, so L is that of the weights at the
# mode (stable to ~1e-11 in tolPwrss).  For a non-canonical link the weights
# are lme4's working (Fisher) weights, so this is lme4's Laplace with expected
# information, evaluated exactly.
make_devfuns <- function(s, tolPwrss = 1e-7) {
  d <- get_data(s)
  glmod <- eval(model_call(quote(lme4::glFormula), s))
  glmod$formula <- NULL
  ctrl <- glmerControl(tolPwrss = tolPwrss)
  devfun1 <- do.call(mkGlmerDevfun, c(glmod, list(nAGQ = 0L, control = ctrl)))
  list(stage1 = devfun1,
       stage2 = function(nAGQ) updateGlmerDevfun(devfun1, glmod$reTrms, nAGQ = nAGQ))
}
warm_value <- function(fn, tol) {
  rho <- environment(fn)
  GQ <- if (is.null(rho$GQmat) || !isTRUE(rho$nAGQ > 0)) GHrule(0L) else rho$GQmat
  rho$pwrssUpdate(rho$pp, rho$resp, tol = tol, GQmat = GQ, compDev = TRUE,
                  grpFac = rho$fac, maxit = rho$maxit, verbose = 0L)
}
# one evaluation of stage 1 (beta = NULL) or stage 2 at tolPwrss `tol`
eval_devfun <- function(s, theta, beta = NULL, nAGQ = 1L, tol = 1e-7, converge = FALSE) {
  tryCatch({
    dfs <- make_devfuns(s, tol)
    fn <- if (is.null(beta)) dfs$stage1 else dfs$stage2(nAGQ)
    w <- character()
    v <- withCallingHandlers(if (is.null(beta)) fn(theta) else fn(c(theta, beta)),
           warning = function(c) { w <<- c(w, conditionMessage(c)); invokeRestart("muffleWarning") })
    passes <- NULL; last_change <- NULL
    if (converge) {
      # repeat until the value is stable: with a non-canonical link (Gamma, inverse
      # Gaussian, probit) PIRLS is Fisher scoring and converges only linearly
      for (passes in 1:50) {
        v_new <- warm_value(fn, tol)
        last_change <- v_new - v; v <- v_new
        if (abs(last_change) < 1e-10) break
      }
    }
    rho <- environment(fn)
    list(value = v, beta_profiled = if (is.null(beta)) I(as.numeric(rho$pp$beta(1))) else NULL,
         warnings = I(w), passes = passes, last_change = last_change)
  }, error = function(e) list(value = NA_real_, error = conditionMessage(e)))
}
CONV_TOLS <- c(1e-12, 1e-10)
eval_converged <- function(s, theta, beta = NULL, nAGQ = 1L) {
  for (tol in CONV_TOLS) {
    r <- eval_devfun(s, theta, beta, nAGQ, tol, converge = TRUE)
    if (is.null(r$error)) { r$tolPwrss <- tol; return(r) }
  }
  r
}
probe_stage2 <- function(s, theta, beta, nAGQ, label) {
  a <- eval_devfun(s, theta, beta, nAGQ, 1e-7)
  b <- eval_devfun(s, theta, beta, nAGQ, 1e-10)
  cc <- eval_converged(s, theta, beta, nAGQ)
  list(label = label, nAGQ = nAGQ, theta = I(unname(theta)), beta = I(unname(beta)),
       value = a$value, value_tolPwrss_1e_10 = b$value,
       value_converged = cc$value, converged_tolPwrss = cc$tolPwrss,
       converged_warm_passes = cc$passes, converged_last_change = cc$last_change,
       errors = I(as.character(c(a$error, b$error, cc$error))), warnings = I(as.character(c(a$warnings, b$warnings, cc$warnings))))
}
probe_stage1 <- function(s, theta, label) {
  a <- eval_devfun(s, theta, NULL, 0L, 1e-7)
  b <- eval_devfun(s, theta, NULL, 0L, 1e-10)
  cc <- eval_converged(s, theta, NULL, 0L)
  list(label = label, theta = I(unname(theta)),
       value = a$value, beta_profiled = a$beta_profiled,
       value_tolPwrss_1e_10 = b$value,
       value_converged = cc$value, beta_profiled_converged = cc$beta_profiled,
       converged_tolPwrss = cc$tolPwrss,
       converged_warm_passes = cc$passes, converged_last_change = cc$last_change,
       errors = I(as.character(c(a$error, b$error, cc$error))), warnings = I(as.character(c(a$warnings, b$warnings, cc$warnings))))
}
theta_probe <- function(theta, lower, factor, zero_step) {
  ifelse(theta == 0 & lower == 0, zero_step, theta * factor)
}
# the converged objective at a fit's own estimates
converged_objective <- function(s, m) {
  th <- getME(m, "theta")
  r <- if (s$nAGQ == 0L) eval_converged(s, th) else eval_converged(s, th, fixef(m), s$nAGQ)
  r$value
}

# ---------------------------------------------------------------- run
NLOPT_TIGHT <- list(algorithm = "NLOPT_LN_BOBYQA", xtol_abs = 1e-12, ftol_abs = 1e-14,
                    xtol_rel = 1e-12, ftol_rel = 1e-15, maxeval = 1e5)
TIGHT <- list(
  bobyqa_maxfun = list(
    call = "glmerControl(optimizer = \"bobyqa\", optCtrl = list(maxfun = 1e5))",
    control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))),
  nloptwrap_tight = list(
    call = "glmerControl(optimizer = \"nloptwrap\", optCtrl = list(algorithm = \"NLOPT_LN_BOBYQA\", xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, ftol_rel = 1e-15, maxeval = 1e5))",
    control = glmerControl(optimizer = "nloptwrap", optCtrl = NLOPT_TIGHT)),
  nloptwrap_tight_pirls = list(
    call = "glmerControl(optimizer = \"nloptwrap\", tolPwrss = 1e-12, optCtrl = list(algorithm = \"NLOPT_LN_BOBYQA\", xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, ftol_rel = 1e-15, maxeval = 1e5))",
    control = glmerControl(optimizer = "nloptwrap", tolPwrss = 1e-12, optCtrl = NLOPT_TIGHT))
)

models_out <- list()
for (s in MODELS) {
  cat("fitting", s$id, "...\n")
  fam <- eval(str2lang(s$family)); if (is.function(fam)) fam <- fam()
  cap <- fit_model(s)
  m <- cap$value
  def <- summarise_fit(m, cap)
  def$objective_converged <- converged_objective(s, m)
  def$clean <- clean_flag(def)
  tights <- list(); tight_fits <- list()
  for (tn in names(TIGHT)) {
    tc <- tryCatch(fit_model(s, TIGHT[[tn]]$control), error = function(e) e)
    if (inherits(tc, "error")) {
      tights[[tn]] <- list(control = TIGHT[[tn]]$call, error = conditionMessage(tc))
      next
    }
    tm <- tc$value
    ts <- summarise_fit(tm, tc)
    ts$objective_converged <- converged_objective(s, tm)
    ts$clean <- clean_flag(ts)
    tight_fits[[tn]] <- ts
    tights[[tn]] <- list(control = TIGHT[[tn]]$call, objective = ts$objective,
                         objective_converged = ts$objective_converged,
                         theta = ts$theta, beta = ts$beta, feval = ts$feval, singular = ts$singular,
                         clean = ts$clean, warnings = ts$warnings, messages = ts$messages,
                         lme4_conv_messages = ts$lme4_conv_messages,
                         optimizer_conv = ts$optimizer_conv)
  }
  best <- names(tight_fits)[which.min(vapply(tight_fits, function(t) t$objective_converged, 0))]
  tight <- tight_fits[[best]]

  # probes around the default optimum
  th <- getME(m, "theta"); be <- fixef(m); lower <- getME(m, "lower")
  se <- def$se_rx
  alt <- rep_len(c(1, -1), length(be))
  P2 <- list(
    list(label = "theta*1.1 (0.05 where theta = 0 on its bound), beta + 0.05*SE",
         theta = theta_probe(th, lower, 1.1, 0.05), beta = be + 0.05 * se),
    list(label = "theta*0.9 (0.02 where theta = 0 on its bound), beta - 0.05*SE",
         theta = theta_probe(th, lower, 0.9, 0.02), beta = be - 0.05 * se),
    list(label = "theta*1.05 (0.1 where theta = 0 on its bound), beta + 0.1*SE*(+1,-1,+1,...)",
         theta = theta_probe(th, lower, 1.05, 0.1), beta = be + 0.1 * se * alt))
  agq2 <- if (s$nAGQ == 0L) 1L else s$nAGQ
  stage2 <- lapply(P2, function(p) probe_stage2(s, p$theta, p$beta, agq2, p$label))
  at_opt2 <- probe_stage2(s, th, be, agq2, "the default fit's (theta, beta)")
  P1 <- list(list(label = "theta*1.1 (0.05 where theta = 0 on its bound)", theta = theta_probe(th, lower, 1.1, 0.05)),
             list(label = "theta*0.9 (0.02 where theta = 0 on its bound)", theta = theta_probe(th, lower, 0.9, 0.02)))
  stage1 <- lapply(P1, function(p) probe_stage1(s, p$theta, p$label))
  at_opt1 <- probe_stage1(s, th, "the default fit's theta")
  obj_best <- min(def$objective_converged, tight$objective_converged)
  models_out[[s$id]] <- list(
    id = s$id, data = s$data,
    data_file = if (!is.null(data_info[[s$data]])) data_info[[s$data]]$file else sim_info[[s$data]]$file,
    transform = if (is.null(s$transform)) NULL else TRANSFORMS[[s$transform]]$text,
    formula = s$formula, family_call = s$family, family = fam$family, link = fam$link,
    nAGQ = s$nAGQ, weights = s$weights, offset = s$offset, note = s$note,
    glmer_call = paste(deparse(model_call(quote(glmer), s, list(nAGQ = s$nAGQ)), width.cutoff = 500L), collapse = " "),
    theta_names = I(names(th)), beta_names = I(names(be)),
    theta_lower = I(unname(lower)),
    default_control = "glmerControl() (optimizer = c(\"bobyqa\", \"Nelder_Mead\"), tolPwrss = 1e-7)",
    default = def,
    tight_refits = tights,
    tight_best = best,
    tight = tight,
    objective_default = def$objective,
    objective_default_converged = def$objective_converged,
    objective_tight = tight$objective,
    objective_tight_converged = tight$objective_converged,
    objective_best_converged = obj_best,
    default_minus_best_converged = def$objective_converged - obj_best,
    flags = list(default_clean = def$clean, tight_clean = tight$clean,
                 singular = def$singular,
                 default_stopped_short = (def$objective_converged - obj_best) > 1e-6,
                 convergence_warnings = I(c(def$warnings, def$lme4_conv_messages))),
    probes = list(
      description = paste(
        "Values of lme4's deviance functions near the default optimum.",
        "stage2: updateGlmerDevfun(devfun1, reTrms, nAGQ) at c(theta, beta) (PIRLS over u only; nAGQ = 1 Laplace, > 1 AGQ; for an nAGQ = 0 model the Laplace stage 2).",
        "stage1: mkGlmerDevfun's nAGQ = 0 function of theta (PIRLS over u and beta jointly; beta_profiled = pp$beta(1) after the call).",
        "value: a fresh devfun with lme4's default tolPwrss = 1e-7 (what lme4 computes); value_tolPwrss_1e_10: the same with tolPwrss = 1e-10;",
        "value_converged: tolPwrss = converged_tolPwrss (1e-12) and one more call of lme4's PIRLS + Laplace/AGQ from the mode, so that log|L|^2 is at the weights of the mode: the exact Laplace/AGQ deviance (use this one to test an exact PIRLS).",
        "Inputs in the order of theta_names / beta_names; SE = the default fit's se_rx."),
      stage2 = stage2,
      stage2_at_default_optimum = at_opt2,
      stage1 = stage1,
      stage1_at_default_theta = at_opt1)
  )
  cat(sprintf("  %s: objective %.10f (conv %.10f); tight %s %.10f (conv %.10f); deviance %.10g, clean %s, singular %s\n",
              s$id, def$objective, def$objective_converged, best, tight$objective, tight$objective_converged,
              def$deviance, def$clean, def$singular))
}

# Top-level keys:
#   meta       versions, the generator, notes on conventions
#   datasets   per public data set: file, nrow, ncol, source, check against the
#              package copy, columns {name: {type, level_rule, levels}}
#   synthetic  per simulated data set: file, description, seed, factor_levels
#   models     {id: {...}} (see the README section of datasets/README.md and the
#              report of issue 22): id, data, data_file, transform, formula,
#              family_call, family, link, nAGQ, weights, offset, glmer_call,
#              theta_names, beta_names, theta_lower, default (fit summary),
#              tight_refits {bobyqa_maxfun, nloptwrap_tight, nloptwrap_tight_pirls},
#              tight_best, tight (fit summary of the tight refit with the lowest
#              converged objective), objective_default(_converged),
#              objective_tight(_converged), objective_best_converged,
#              default_minus_best_converged, flags, probes
out <- list(
  meta = list(
    script = "tests/reference/glmer_reference.R",
    R = R.version.string,
    lme4 = as.character(packageVersion("lme4")),
    Matrix = as.character(packageVersion("Matrix")),
    mlmRev = as.character(packageVersion("mlmRev")),
    minqa = as.character(packageVersion("minqa")),
    nloptr = as.character(packageVersion("nloptr")),
    statmod = as.character(packageVersion("statmod")),
    BLAS = sessionInfo()$BLAS,
    OPENBLAS_NUM_THREADS = Sys.getenv("OPENBLAS_NUM_THREADS"),
    notes = I(c(
      "objective = m@devcomp$cmp[[\"dev\"]] = -2 * logLik(m): glmer's Laplace/AGQ deviance at the optimum (the stage-1 value for nAGQ = 0); optinfo_val = m@optinfo$val, which in lme4 1.1-31 is the optimizer's parameter vector c(theta, beta) (c(theta) for nAGQ = 0), not the objective",
      "objective_converged = the same deviance function evaluated at the fit's (theta, beta) with a converged PIRLS (tolPwrss = 1e-12 and log|L|^2 at the weights of the mode, see probes.description); lme4's own objective is off from it by up to ~1e-3 (PIRLS stopping rule); tight = the tight refit with the lowest objective_converged",
      "deviance = deviance(m) = sum of squared deviance residuals (lme4 1.1-31 deviance.merMod for GLMMs), NOT -2 logLik",
      "se = sqrt(diag(vcov(m))) (lme4 1.1-31 default: the finite-difference Hessian when available and positive definite); se_hessian = vcov(m, use.hessian = TRUE); se_rx = vcov(m, use.hessian = FALSE) (from RX, sigma^2 * unscaled)",
      "ranef = as.data.frame(ranef(m, condVar = TRUE)), column-wise, rows in lme4's order (grouping factor levels in R's level order)",
      "fitted_head = fitted(m)[1:10] (response scale; proportions for a cbind() response); residuals_head: residuals(m, type)[1:10]",
      "data are read from the CSV files and factors rebuilt with the level orders in datasets.<name>.columns.<col>.levels",
      "numbers: shortest decimal that reads back as the same double; NA/NaN/Inf as null",
      "run with one BLAS thread (OPENBLAS_NUM_THREADS = 1): with several threads the default fits differ in the last digits (grouseticks: objective by ~1e-9, theta by ~1e-5, deviance(m) by ~1e-3)"
    ))),
  datasets = data_info,
  synthetic = sim_info,
  models = models_out
)
writeLines(to_json(out), out_file)
cat("wrote", out_file, "\n")
