# Reference tables of broom.mixed 0.2.9 (tidy, glance, augment) on lmerTest fits, for issue 21.
# Four models on the project's bundled CSVs (datasets/; factor levels sorted as strings, as
# sparselmm.datasets.load sorts them): sleepstudy with a random slope (REML), Penicillin's crossed
# intercepts (REML), cake's recipe * temp with a factor, by ML, and sleepstudy's slope model again
# with prior weights and an offset (w = 1 + Days %% 3, off = Days / 10, given as arguments).
# JSON: {versions, models: [{id, data, formula, REML, weights, offset, theta, objective, gradient,
#   tidy: {name: {effects, conf.int, conf.level, columns, types, values}}, glance, augment}]}.
# The fits are driven to the optimum first, as tests/reference/lmertest_reference.R does (its
# refined_fit, tests/reference/refined_fit.R): lme4's default stop can sit above the optimum by more than 1e-6.
# Run from the project root:
#   Rscript tests/reference/broom_reference.R tests/reference/broom_tables.json
suppressMessages({library(lmerTest); library(broom.mixed); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "broom_tables.json"
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-13, xtol_rel = 1e-13, maxeval = 1e5),
                     check.conv.singular = "ignore")

# the bundled CSV, its factor columns (those of sparselmm.datasets) with levels sorted as strings
read_data <- function(file, factors) {
  d <- read.csv(file.path("datasets", file), stringsAsFactors = FALSE)
  for (f in factors) {
    v <- as.character(d[[f]])
    d[[f]] <- factor(v, levels = sort(unique(v), method = "radix"))
  }
  d
}
sleepstudy <- read_data("sleepstudy.csv", "Subject")
Penicillin <- read_data("Penicillin.csv", c("plate", "sample"))
cake <- read_data("cake.csv", c("replicate", "recipe", "temperature"))
sleepstudy_w <- sleepstudy  # prior weights and an offset, as arguments (augment's "(weights)", "(offset)")
sleepstudy_w$w <- 1 + sleepstudy_w$Days %% 3
sleepstudy_w$off <- sleepstudy_w$Days / 10

cases <- list(
  list(id = "sleep_slope", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE),
  list(id = "penicillin_crossed", data = "Penicillin", formula = "diameter ~ 1 + (1 | plate) + (1 | sample)", REML = TRUE),
  list(id = "cake_ml", data = "cake", formula = "angle ~ recipe * temp + (1 | replicate)", REML = FALSE),
  list(id = "sleep_weighted", data = "sleepstudy_w", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE,
       weights = "w", offset = "off")
)

# the tidy calls: name -> effects, conf.int, conf.level
tidy_calls <- list(
  default = list(effects = c("ran_pars", "fixed"), conf.int = FALSE, conf.level = 0.95),
  default_ci = list(effects = c("ran_pars", "fixed"), conf.int = TRUE, conf.level = 0.95),
  default_ci90 = list(effects = c("ran_pars", "fixed"), conf.int = TRUE, conf.level = 0.9),
  fixed = list(effects = "fixed", conf.int = FALSE, conf.level = 0.95),
  ran_pars = list(effects = "ran_pars", conf.int = FALSE, conf.level = 0.95),
  ran_pars_ci = list(effects = "ran_pars", conf.int = TRUE, conf.level = 0.95),
  ran_vals = list(effects = "ran_vals", conf.int = FALSE, conf.level = 0.95),
  ran_vals_ci90 = list(effects = "ran_vals", conf.int = TRUE, conf.level = 0.9),
  ran_coefs = list(effects = "ran_coefs", conf.int = FALSE, conf.level = 0.95),
  ran_coefs_ci = list(effects = "ran_coefs", conf.int = TRUE, conf.level = 0.95),  # warns; NA intervals
  all = list(effects = c("ran_coefs", "ran_vals", "fixed", "ran_pars"), conf.int = FALSE, conf.level = 0.95),
  all_ci = list(effects = c("ran_coefs", "ran_vals", "fixed", "ran_pars"), conf.int = TRUE, conf.level = 0.95),
  fixed_ran_vals = list(effects = c("ran_vals", "fixed"), conf.int = FALSE, conf.level = 0.95)
)

source("tests/reference/refined_fit.R")  # refined_fit(): the optimum, refined

# a data frame as JSON: its column names in order, their types, and each column (factors and
# characters as strings, logical NA columns as numbers; arrays even of length one); NA and NaN are
# written as null
table_json <- function(tab) {
  df <- as.data.frame(tab, stringsAsFactors = FALSE)
  vals <- lapply(df, function(v) {
    I(if (is.factor(v) || is.character(v)) as.character(v) else unname(as.numeric(v)))
  })
  list(columns = I(colnames(df)), types = I(unname(sapply(df, function(v) if (is.factor(v) || is.character(v)) "string" else "number"))),
       values = vals)
}

res <- list()
for (cs in cases) {
  m <- as_lmerModLmerTest(refined_fit(cs$formula, cs$data, cs$REML, NULL, cs$weights, cs$offset))
  d <- get(cs$data)
  lf <- lFormula(as.formula(cs$formula), data = d, REML = cs$REML,
                 weights = if (is.null(cs$weights)) NULL else d[[cs$weights]],
                 offset = if (is.null(cs$offset)) NULL else d[[cs$offset]])
  g <- numDeriv::grad(do.call(mkLmerDevfun, lf), getME(m, "theta"))
  one <- list(id = cs$id, data = cs$data, formula = cs$formula, REML = cs$REML,
              weights = if (is.null(cs$weights)) NA else cs$weights, offset = if (is.null(cs$offset)) NA else cs$offset,
              theta = I(unname(getME(m, "theta"))),
              objective = unname(if (cs$REML) m@devcomp$cmp[["REML"]] else m@devcomp$cmp[["dev"]]),
              gradient = I(g), tidy = list())
  for (nm in names(tidy_calls)) {
    tc <- tidy_calls[[nm]]
    tab <- suppressWarnings(tidy(m, effects = tc$effects, conf.int = tc$conf.int, conf.level = tc$conf.level))
    one$tidy[[nm]] <- c(list(effects = I(tc$effects), conf.int = tc$conf.int, conf.level = tc$conf.level),
                        table_json(tab))
  }
  one$glance <- table_json(glance(m))
  one$augment <- table_json(augment(m))
  res[[length(res) + 1]] <- one
  message(cs$id, ": max |gradient of the objective in theta| ", signif(max(abs(g)), 3))
}
meta <- list(broom.mixed = as.character(packageVersion("broom.mixed")), lme4 = as.character(packageVersion("lme4")),
             lmerTest = as.character(packageVersion("lmerTest")), R = R.version.string)
writeLines(toJSON(list(versions = meta, models = res), digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
           out_file)
