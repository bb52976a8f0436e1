# lme4's profile-likelihood intervals of glmer fits (issue 22), for tests/test_glmer_confint.py.
#
# Run from the project root (R 4.2, lme4 1.1-31):
#   OPENBLAS_NUM_THREADS=1 Rscript tests/reference/glmer_confint_reference.R tests/reference/glmer_confint.json
#
# Reads the bundled CSVs (datasets/), rebuilds the factors as glmer_reference.R does, fits each model
# with glmer's defaults and records confint(m, method = "profile") at level 0.95 (lme4 profiles
# the deviance on a grid of zeta and inverts an interpolating spline: its ends carry that
# interpolation, ~1e-3 relative), and the fit's theta, beta and deviance.
#
# Contraception (use ~ age + I(age^2) + urban + livch + (urban | district)) is not here: glmer's
# default fit stops short of the optimum and confint() then stops with "profiling detected new,
# lower deviance"; refitted by BOBYQA to convergence, its profile had not finished after 45 min
# (2026-12-03).
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
rd <- function(f) read.csv(file.path("datasets", f), stringsAsFactors = FALSE)
cbpp <- rd("cbpp.csv"); cbpp$herd <- factor(cbpp$herd, levels = as.character(1:15)); cbpp$period <- factor(cbpp$period)
cbpp$obs <- factor(seq_len(nrow(cbpp)))  # an observation-level random effect (overdispersion)
models <- list(
  cbpp_laplace = list(data = cbpp, formula = cbind(incidence, size - incidence) ~ period + (1 | herd), nAGQ = 1),
  cbpp_agq9 = list(data = cbpp, formula = cbind(incidence, size - incidence) ~ period + (1 | herd), nAGQ = 9),
  cbpp_obs = list(data = cbpp, formula = cbind(incidence, size - incidence) ~ period + (1 | herd) + (1 | obs), nAGQ = 1)
)
num <- function(x) paste0("[", paste(sprintf("%.17g", x), collapse = ", "), "]")
str_ <- function(x) paste0("[", paste0('"', x, '"', collapse = ", "), "]")
out <- c()
for (k in names(models)) {
  s <- models[[k]]
  ctrl <- if (is.null(s$control)) glmerControl() else s$control
  m <- glmer(s$formula, s$data, family = binomial, nAGQ = s$nAGQ, control = ctrl)
  ci <- suppressWarnings(confint(m, method = "profile", level = 0.95))
  out <- c(out, sprintf('"%s": {"formula": "%s", "nAGQ": %d, "theta": %s, "beta": %s, "deviance": %.17g, "rows": %s, "lower": %s, "upper": %s}',
    k, paste(trimws(deparse(s$formula)), collapse = " "), s$nAGQ, num(getME(m, "theta")), num(fixef(m)), deviance(m),
    str_(rownames(ci)), num(ci[, 1]), num(ci[, 2])))
  cat(k, "done\n")
}
writeLines(paste0("{\n", paste(out, collapse = ",\n"), "\n}"), args[1])
