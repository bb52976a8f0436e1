# Extra lme4 reference values for the sparselmm test-suite.
#
# Makes:  tests/reference/lme4_extra.json
# Run:    cd /work/main && Rscript tests/reference/lme4_extra_reference.R
#         (needs R 4 with lme4, lmerTest, pbkrtest, jsonlite; made with lme4 1.1-31,
#          lmerTest 3.1-3, pbkrtest 0.5.2)
#
# Reads the data from datasets/*.csv (column classes from
# tests/reference/coltypes_shared.json; timss is built from
# datasets/timss1997_surrogate.txt exactly as timss_raw() in lme4_reference.R)
# and the REML cases from tests/reference/lme4_reference_shared.json.
#
# Top-level keys of the JSON:
#   profile         confint(method = "profile") and confint(method = "Wald") for
#                   sleepstudy (REML, ML), Dyestuff (ML, REML), Penicillin (REML),
#                   plus each fit's theta, sigma and objective
#   kenward_roger   lmerTest summary(ddf = "Kenward-Roger") coefficient table and
#                   pbkrtest::vcovAdj() for every REML case of the shared JSON
#   anova_lrt       lme4 anova(m0, m1) likelihood-ratio tables
#   predict         predict / fitted / residuals / coef for sleepstudy REML
#   formula_designs lFormula() designs for a handful of formula-grammar forms
# Keys inside profile / kenward_roger use the case id of lme4_reference.R.
suppressPackageStartupMessages({
  library(lme4); library(lmerTest); library(pbkrtest); library(jsonlite)
})

# ---- locate repository root (script lives in <root>/tests/reference) --------
root <- local({
  a <- grep("^--file=", commandArgs(FALSE), value = TRUE)
  if (length(a)) normalizePath(file.path(dirname(sub("^--file=", "", a[1])), "..", ".."))
  else getwd()
})
ref_dir <- file.path(root, "tests", "reference")
data_dir <- file.path(root, "datasets")
out_file <- file.path(ref_dir, "lme4_extra.json")

# ---- data, rebuilt as in lme4_reference.R ------------------------------------
alpha_factors <- function(d) {
  for (n in names(d)) if (is.factor(d[[n]]) || is.character(d[[n]]))
    d[[n]] <- factor(as.character(d[[n]]))
  d
}
timss_raw <- function() {
  t <- read.table(file.path(data_dir, "timss1997_surrogate.txt"), header = TRUE,
                  colClasses = c(rep("factor", 4), rep("numeric", 3)))
  gm <- with(t, tapply(math, idschool, mean)); gt <- with(t, tapply(hoursTV, idschool, mean))
  t <- merge(t, data.frame(idschool = names(gm), grpMmath = as.numeric(gm),
                           grpMhoursTV = as.numeric(gt)))
  cbind(t, grpCmath = t$math - t$grpMmath, grpChoursTV = t$hoursTV - t$grpMhoursTV)
}
coltypes <- fromJSON(file.path(ref_dir, "coltypes_shared.json"))
load_ds <- function(name) {
  if (name == "timss") return(alpha_factors(timss_raw()))
  ct <- unlist(coltypes[[name]])
  alpha_factors(read.csv(file.path(data_dir, paste0(name, ".csv")), colClasses = ct))
}
# Each data set becomes a global variable of its own name, and models are fitted
# with a call that names it (data = sleepstudy, ...), so update()/profile()/
# lmerTest can re-evaluate the call.
for (n in names(coltypes)) assign(n, load_ds(n), envir = globalenv())

sanitize <- function(f)
  gsub("[^A-Za-z0-9]+", "_", gsub("||", " zerocorr ", gsub("/", " nested ", f, fixed = TRUE), fixed = TRUE))
case_id <- function(ds, f, reml) paste0(ds, "__", sanitize(f), "__", if (reml) "REML" else "ML")

# evaluate expr, collecting warnings and messages; errors are caught
catching <- function(expr) {
  warns <- character(0); msgs <- character(0); err <- NULL
  val <- withCallingHandlers(
    tryCatch(expr, error = function(e) { err <<- conditionMessage(e); NULL }),
    warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") },
    message = function(m) { msgs <<- c(msgs, conditionMessage(m)); invokeRestart("muffleMessage") })
  list(value = val, warnings = warns, messages = msgs, error = err)
}

fit <- function(ds, f, reml, control = NULL) {
  args <- list(formula = as.formula(f), data = as.name(ds), REML = reml)
  if (!is.null(control)) args$control <- control
  do.call(lme4::lmer, args)
}
objective <- function(m) if (isREML(m)) REMLcrit(m) else deviance(m)
fit_summary <- function(m) list(
  theta = I(unname(getME(m, "theta"))), sigma = sigma(m), objective = objective(m),
  beta_names = I(names(fixef(m))), beta = I(unname(fixef(m))))
ci_list <- function(ci) list(names = I(rownames(ci)), lower = I(unname(ci[, 1])),
                             upper = I(unname(ci[, 2])), level_columns = I(colnames(ci)))

out <- list()

# ---- 1. profile & Wald confidence intervals ----------------------------------
prof_cases <- list(
  list("sleepstudy", "Reaction ~ Days + (Days | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days + (Days | Subject)", FALSE),
  list("Dyestuff", "Yield ~ 1 + (1 | Batch)", FALSE),
  list("Dyestuff", "Yield ~ 1 + (1 | Batch)", TRUE),
  list("Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", TRUE))
out$profile <- list()
for (cs in prof_cases) {
  ds <- cs[[1]]; f <- cs[[2]]; reml <- cs[[3]]; id <- case_id(ds, f, reml)
  fr <- catching(fit(ds, f, reml)); m <- fr$value
  t0 <- proc.time()[["elapsed"]]
  pr <- catching(confint(m, method = "profile", level = 0.95))
  secs <- proc.time()[["elapsed"]] - t0
  wa <- catching(confint(m, method = "Wald", level = 0.95))
  out$profile[[id]] <- c(
    list(dataset = ds, formula = f, REML = reml, level = 0.95),
    fit_summary(m),
    list(fit_warnings = I(c(fr$warnings, fr$messages)),
         profile = if (is.null(pr$error)) ci_list(pr$value) else NULL,
         profile_error = pr$error, profile_warnings = I(c(pr$warnings, pr$messages)),
         profile_seconds = secs,
         wald = if (is.null(wa$error)) ci_list(wa$value) else NULL,
         wald_error = wa$error))
  cat(sprintf("profile  %-70s %s\n", id, if (is.null(pr$error)) "ok" else pr$error))
}

# ---- 2. Kenward-Roger for every REML case of the shared reference ------------
shared <- fromJSON(file.path(ref_dir, "lme4_reference_shared.json"), simplifyVector = FALSE)
out$kenward_roger <- list()
for (id in names(shared)) {
  cs <- shared[[id]]
  if (!isTRUE(cs$REML)) next
  stopifnot(identical(case_id(cs$dataset, cs$formula, TRUE), id))
  kr_entry <- function(control = NULL) {
    fr <- catching(fit(cs$dataset, cs$formula, TRUE, control)); m <- fr$value
    t0 <- proc.time()[["elapsed"]]
    kr <- catching(summary(lmerTest::as_lmerModLmerTest(m), ddf = "Kenward-Roger")$coefficients)
    va <- catching(as.matrix(pbkrtest::vcovAdj(m)))
    secs <- proc.time()[["elapsed"]] - t0
    co <- kr$value
    list(
      dataset = cs$dataset, formula = cs$formula, REML = TRUE,
      optimizer = m@optinfo$optimizer,
      objective = objective(m), objective_shared = cs$objective,
      theta = I(unname(getME(m, "theta"))), sigma = sigma(m),
      beta_names = I(names(fixef(m))),
      estimate = I(unname(co[, "Estimate"])), se = I(unname(co[, "Std. Error"])),
      df = I(unname(co[, "df"])), t = I(unname(co[, "t value"])), p = I(unname(co[, "Pr(>|t|)"])),
      vcov_adj = unname(va$value), vcov_unadjusted = unname(as.matrix(vcov(m))),
      fit_warnings = I(c(fr$warnings, fr$messages)),
      kr_warnings = I(c(kr$warnings, kr$messages)), kr_error = kr$error,
      vcovadj_error = va$error, seconds = secs)
  }
  e <- kr_entry()
  # lme4's default optimiser (nloptwrap) may stop short of the optimum on hard
  # cases (this machine: timss random-slopes REML); then also give KR at a
  # bobyqa refit, which gets closer to the optimum.
  e$converged <- !any(grepl("converge", e$fit_warnings))
  if (!e$converged)
    e$refit_bobyqa <- kr_entry(lmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))
  out$kenward_roger[[id]] <- e
  cat(sprintf("KR       %-70s df=%s%s\n", id, paste(signif(e$df, 6), collapse = " "),
              if (e$converged) "" else "  [not converged: bobyqa refit added]"))
}

# ---- 3. anova likelihood-ratio tests -----------------------------------------
lrt_pairs <- list(
  list("grocery", "price ~ 1 + (1 | item)", "price ~ store + (1 | item)", FALSE),
  list("sleepstudy", "Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)", TRUE),
  list("timss", "science ~ 1 + (1 | idschool)", "science ~ 1 + math + (1 | idschool)", FALSE))
out$anova_lrt <- list()
for (pr in lrt_pairs) {
  ds <- pr[[1]]; reml <- pr[[4]]
  m0 <- fit(ds, pr[[2]], reml); m1 <- fit(ds, pr[[3]], reml)
  an <- catching(anova(m0, m1))
  tab <- as.data.frame(an$value)
  id <- paste0(ds, "__", sanitize(pr[[2]]), "__vs__", sanitize(pr[[3]]), "__", if (reml) "REML" else "ML")
  out$anova_lrt[[id]] <- list(
    dataset = ds, formula0 = pr[[2]], formula1 = pr[[3]], fitted_REML = reml,
    refitted_ML = any(grepl("refitting", an$messages)),
    messages = I(an$messages), warnings = I(an$warnings),
    rows = I(rownames(tab)),
    columns = lapply(tab, function(x) I(unname(x))))
  cat(sprintf("anova    %-70s Chisq=%s\n", id, format(tab$Chisq[2], digits = 10)))
}

# ---- 4. predictions etc. for sleepstudy REML ---------------------------------
m <- fit("sleepstudy", "Reaction ~ Days + (Days | Subject)", TRUE)
nd <- data.frame(Days = c(0, 5, 9.5), Subject = c("308", "335", "308"))
nd_new <- data.frame(Days = 3, Subject = "999")
cf <- coef(m)$Subject[1:3, , drop = FALSE]
out$predict <- list(
  dataset = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
  theta = I(unname(getME(m, "theta"))), sigma = sigma(m), objective = objective(m),
  newdata = list(Days = I(nd$Days), Subject = I(nd$Subject)),
  predict_re_NULL = I(unname(predict(m, newdata = nd, re.form = NULL))),
  predict_re_NA = I(unname(predict(m, newdata = nd, re.form = NA))),
  newdata_new_level = list(Days = I(nd_new$Days), Subject = I(nd_new$Subject)),
  predict_new_level = I(unname(predict(m, newdata = nd_new, re.form = NULL,
                                       allow.new.levels = TRUE))),
  fitted_head = I(unname(fitted(m)[1:5])),
  residuals_head = I(unname(residuals(m)[1:5])),
  residuals_pearson_head = I(unname(residuals(m, type = "pearson")[1:5])),
  coef_Subject_head = list(rownames = I(rownames(cf)), columns = I(colnames(cf)),
                           values = lapply(cf, function(x) I(unname(x)))))

# ---- 5. formula designs ------------------------------------------------------
designs <- list(
  list("sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)"),
  list("sleepstudy", "Reaction ~ Days + (Days - 1 | Subject)"),
  list("sleepstudy", "Reaction ~ 0 + Days + (1 | Subject)"),
  list("sleepstudy", "Reaction ~ Days + I(Days^2) + log(Days + 1) + (1 | Subject)"),
  list("Pastes", "strength ~ 1 + (1 | batch) + (1 | batch:cask)"),
  list("Pastes", "strength ~ 1 + (1 | cask) + (1 | batch)"),
  list("cake", "angle ~ recipe + temperature + (1 | recipe:replicate)"),
  list("Hsb82", "mAch ~ meanses * cses + sector * cses + (cses | school)"),
  list("grocery", "price ~ 1 + (0 + store | item)"))
design_of <- function(lf) {
  rt <- lf$reTrms
  list(X_names = I(colnames(lf$X)), X_dim = I(dim(lf$X)), Zt_dim = I(dim(rt$Zt)),
       theta = I(unname(rt$theta)), lower = I(unname(rt$lower)), Gp = I(unname(rt$Gp)),
       cnms = lapply(seq_along(rt$cnms), function(i)
         list(group = names(rt$cnms)[i], columns = I(rt$cnms[[i]]))),
       flist_names = I(names(rt$flist)))
}
out$formula_designs <- list()
for (cs in designs) {
  ds <- cs[[1]]; f <- cs[[2]]; id <- case_id(ds, f, TRUE)
  lf <- catching(do.call(lme4::lFormula, list(formula = as.formula(f), data = as.name(ds), REML = TRUE)))
  lf_ignore <- NULL
  if (!is.null(lf$error))   # design with lme4's identifiability checks switched off
    lf_ignore <- catching(do.call(lme4::lFormula, list(
      formula = as.formula(f), data = as.name(ds), REML = TRUE,
      control = lmerControl(check.nobs.vs.nRE = "ignore"))))
  lm <- catching(fit(ds, f, TRUE))
  lm_ignore <- if (!is.null(lf_ignore))
    catching(fit(ds, f, TRUE, lmerControl(check.nobs.vs.nRE = "ignore"))) else NULL
  src <- if (is.null(lf$error)) lf else lf_ignore
  out$formula_designs[[id]] <- c(
    list(dataset = ds, formula = f, REML = TRUE,
         lFormula_error = lf$error, lFormula_warnings = I(c(lf$warnings, lf$messages)),
         design_with_checks_ignored = !is.null(lf_ignore)),
    if (is.null(src$error)) design_of(src$value) else list(design_error = src$error),
    list(lmer_error = lm$error, lmer_warnings = I(lm$warnings), lmer_messages = I(lm$messages),
         lmer_ok = is.null(lm$error),
         lmer_theta = if (is.null(lm$error)) I(unname(getME(lm$value, "theta"))) else NULL),
    if (!is.null(lm_ignore)) list(lmer_checks_ignored = list(
      control = "lmerControl(check.nobs.vs.nRE = \"ignore\")",
      error = lm_ignore$error, warnings = I(lm_ignore$warnings), messages = I(lm_ignore$messages),
      theta = if (is.null(lm_ignore$error)) I(unname(getME(lm_ignore$value, "theta"))) else NULL,
      sigma = if (is.null(lm_ignore$error)) sigma(lm_ignore$value) else NULL,
      objective = if (is.null(lm_ignore$error)) objective(lm_ignore$value) else NULL)))
  cat(sprintf("design   %-70s lFormula:%s lmer:%s\n", id,
              if (is.null(lf$error)) "ok" else "ERROR",
              if (!is.null(lm$error)) "ERROR" else if (length(lm$warnings)) "warn" else "ok"))
}

out$meta <- list(
  script = "tests/reference/lme4_extra_reference.R",
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")), lmerTest = as.character(packageVersion("lmerTest")),
  pbkrtest = as.character(packageVersion("pbkrtest")), Matrix = as.character(packageVersion("Matrix")))

write_json(out, out_file, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null", null = "null")
cat("wrote", out_file, "\n")
