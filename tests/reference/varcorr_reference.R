# lme4's printed VarCorr, for issue 21: print(VarCorr(m), comp = ..., digits = ...) of several
# models, each fitted at the optimum (lme4's default stop can sit above it in the 4th-6th digit,
# which the printed digits would show): nloptwrap's BOBYQA with tolerances near machine precision,
# then Newton steps on the deviance (as lmertest_reference.R's refined_fit).  For each model the
# JSON also says, for each print, whether it is "stable" (the same text when every standard
# deviation and correlation is moved by a relative 1e-6 either way: a fit that agrees with the
# optimum to that precision prints the same digits; a value on a rounding boundary, such as
# Pastes' batch standard deviation 1.2873650 at digits = 5, does not) and whether lme4's default
# fit prints the same text ("default_fit_same").
# Data are the project's bundled CSVs, factors as sparselmm.datasets.load reads them.
# Run from the project root:
#   Rscript tests/reference/varcorr_reference.R tests/reference/varcorr_print.json
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "varcorr_print.json"
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-13, xtol_rel = 1e-13, maxeval = 1e5),
                     check.conv.singular = "ignore")

sleepstudy <- read.csv("datasets/sleepstudy.csv")
sleepstudy$Subject <- factor(as.character(sleepstudy$Subject))
Penicillin <- read.csv("datasets/Penicillin.csv", stringsAsFactors = TRUE)
Pastes <- read.csv("datasets/Pastes.csv", stringsAsFactors = TRUE)
Hsb82 <- read.csv("datasets/Hsb82.csv", stringsAsFactors = TRUE)
Hsb82$school <- factor(as.character(Hsb82$school))

cases <- list(
  list(id = "sleep_slope", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE),
  list(id = "sleep_slope_ml", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = FALSE),
  list(id = "sleep_diag", data = "sleepstudy", formula = "Reaction ~ Days + (Days || Subject)", REML = TRUE),
  list(id = "sleep_quadratic", data = "sleepstudy", formula = "Reaction ~ Days + (1 + Days + I(Days^2) | Subject)",
       REML = TRUE),
  list(id = "penicillin", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE),
  list(id = "pastes", data = "Pastes", formula = "strength ~ 1 + (1 | batch/cask)", REML = TRUE),
  # a 1-column term before a 2-column one (lme4 orders the terms by their numbers of levels);
  # mAch ~ cses + (cses + meanses | school) is singular, so not here
  list(id = "hsb_nested", data = "Hsb82", formula = "mAch ~ cses + (cses | school) + (1 | school:sx)", REML = TRUE)
)

source("tests/reference/refined_fit.R")  # refined_fit(): the optimum, refined

# the VarCorr object with its standard deviations and correlations multiplied by f
perturbed <- function(vc, f) {
  for (g in seq_along(vc)) {
    attr(vc[[g]], "stddev") <- attr(vc[[g]], "stddev") * f
    cc <- attr(vc[[g]], "correlation") * f
    diag(cc) <- 1
    attr(vc[[g]], "correlation") <- cc
  }
  attr(vc, "sc") <- attr(vc, "sc") * f
  vc
}
rel <- 1e-7

printed <- function(vc, comp, digits) {
  txt <- if (is.null(digits)) capture.output(print(vc, comp = comp)) else
    capture.output(print(vc, comp = comp, digits = digits))
  paste0(paste(txt, collapse = "\n"), "\n")
}

comps <- list(std = "Std.Dev.", var = "Variance", both = c("Std.Dev.", "Variance"),
              both_var_first = c("Variance", "Std.Dev."), partial = c("Var", "Std"))
res <- list()
for (cs in cases) {
  d <- get(cs$data)
  m <- refined_fit(cs$formula, NULL, cs$REML, data = d)
  m0 <- suppressMessages(suppressWarnings(lmer(as.formula(cs$formula), data = d, REML = cs$REML)))
  vcdf <- as.data.frame(VarCorr(m))
  one <- list(data = cs$data, formula = cs$formula, REML = cs$REML, theta = unname(getME(m, "theta")),
              varcorr = list(grp = vcdf$grp, var1 = vcdf$var1, var2 = vcdf$var2, vcov = vcdf$vcov, sdcor = vcdf$sdcor),
              singular = isSingular(m), default = paste0(paste(capture.output(print(VarCorr(m))), collapse = "\n"), "\n"),
              prints = list())
  for (digits in list(NULL, 3L, 4L)) {
    for (nm in names(comps)) {
      key <- paste0(nm, if (is.null(digits)) "" else paste0("_digits", digits))
      txt <- printed(VarCorr(m), comps[[nm]], digits)
      stable <- identical(txt, printed(perturbed(VarCorr(m), 1 - rel), comps[[nm]], digits)) &&
        identical(txt, printed(perturbed(VarCorr(m), 1 + rel), comps[[nm]], digits))
      one$prints[[key]] <- list(comp = comps[[nm]], digits = if (is.null(digits)) NA else digits, text = txt,
                                stable = stable,
                                default_fit_same = identical(txt, printed(VarCorr(m0), comps[[nm]], digits)))
    }
  }
  res[[cs$id]] <- one
}
res$`_meta` <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    script = "tests/reference/varcorr_reference.R")
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_file)
