# Reference tables of lmerTest 3.1 (anova types 1-3 with Satterthwaite and Kenward-Roger df,
# lme4's anova, contest, drop1, ranova), lme4's drop1(test = "Chisq") and emmeans' marginal means
# and pairwise contrasts, for issue 20.
# The fits are driven to the optimum first (lme4's default stop can sit above it by more than the
# tolerances): nloptwrap's BOBYQA with tolerances near machine precision, checked by the
# gradient of the deviance.  Run from the project root:
#   Rscript tests/reference/lmertest_reference.R tests/reference/lmertest_tables.json
suppressMessages({library(lmerTest); library(jsonlite); library(emmeans)})
emm_options(lmerTest.limit = 1e6, pbkrtest.limit = 1e6)  # df for every data set, as sparselmm computes them
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "lmertest_tables.json"
kr_large <- "--kr-large" %in% args  # only the Kenward-Roger tables of the large data sets (pbkrtest: minutes)
tight <- lmerControl(optimizer = "nloptwrap",
                     optCtrl = list(ftol_abs = 1e-15, ftol_rel = 1e-15, xtol_abs = 1e-13, xtol_rel = 1e-13, maxeval = 1e5),
                     check.conv.singular = "ignore")
sleepstudy <- lme4::sleepstudy
sleepstudy$Subject <- factor(as.character(sleepstudy$Subject))
sleepstudy$o <- factor(ifelse(sleepstudy$Days < 3, "lo", ifelse(sleepstudy$Days < 7, "mid", "hi")),
                       levels = c("lo", "mid", "hi"), ordered = TRUE)
sleepstudy$g <- ifelse(sleepstudy$Days %% 2 == 0, "even", "odd")
grocery <- read.csv("datasets/grocery.csv", stringsAsFactors = TRUE)
grocery_unbalanced <- grocery[-c(1, 5, 12, 23, 38), ]
cake <- read.csv("datasets/cake.csv", stringsAsFactors = TRUE)
cake$replicate <- factor(cake$replicate)
Hsb82 <- read.csv("datasets/Hsb82.csv", stringsAsFactors = TRUE)
Hsb82$school <- factor(Hsb82$school)
InstEval8k <- droplevels(lme4::InstEval[1:8000, ])
InstEval1500 <- droplevels(lme4::InstEval[1:1500, ])  # crossed, small enough for pbkrtest (~15 s a table)

cases <- list(
  list(id = "grocery", data = "grocery", formula = "price ~ store + (1 | item)", REML = TRUE, emm = list(list("store"))),
  list(id = "grocery_unbalanced", data = "grocery_unbalanced", formula = "price ~ store + (1 | item)", REML = TRUE,
       emm = list(list("store"))),
  list(id = "cake_covariate", data = "cake", formula = "angle ~ recipe * temp + (1 | replicate)", REML = TRUE,
       emm = list(list("recipe"))),
  list(id = "cake_factorial", data = "cake", formula = "angle ~ recipe * factor(temp) + (1 | replicate)", REML = TRUE,
       emm = list(list("temp"), list("recipe", "temp"))),
  list(id = "sleep_slope", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)", REML = TRUE),
  list(id = "sleep_slope_ml", data = "sleepstudy", formula = "Reaction ~ Days * g + (Days | Subject)", REML = FALSE,
       emm = list(list("g"))),
  list(id = "sleep_ordered", data = "sleepstudy", formula = "Reaction ~ o * g + (1 | Subject)", REML = TRUE,
       emm = list(list("o", "g"), list(c("o", "g")), list("g"))),
  list(id = "hsb_slope", data = "Hsb82", formula = "mAch ~ sector * cses + meanses + (cses | school)", REML = TRUE),
  list(id = "hsb_sum", data = "Hsb82", formula = "mAch ~ sector * cses + (1 | school)", REML = TRUE,
       contrasts = list(sector = "contr.sum"), emm = list(list("sector"))),
  list(id = "insteval_crossed", data = "InstEval8k", formula = "y ~ service * studage + (1 | s) + (1 | d)", REML = TRUE,
       kr = FALSE),  # pbkrtest: more than 40 minutes here (dense 8000 x 8000 matrices); --kr-large runs it
  list(id = "insteval_crossed_kr", data = "InstEval1500", formula = "y ~ service * studage + (1 | s) + (1 | d)",
       REML = TRUE, emm = list(list("service"), list("studage")))
)

source("tests/reference/refined_fit.R")  # refined_fit(): the optimum, refined

table_json <- function(tab) {
  df <- as.data.frame(tab)
  list(rows = rownames(df), columns = colnames(df), values = lapply(df, function(v) unname(as.numeric(v))))
}
res <- list()
# with --kr-large: those large cases only (or the ids named after it), with their Kenward-Roger tables
if (kr_large) cases <- Filter(function(cs) isFALSE(cs$kr) && (!any(args %in% sapply(cases, `[[`, "id")) || cs$id %in% args), cases)
for (cs in cases) {
  d <- get(cs$data)
  m <- as_lmerModLmerTest(refined_fit(cs$formula, cs$data, cs$REML, cs$contrasts))
  g <- numDeriv::grad(function(t) { environment(mkLmerDevfun)  # (the gradient at the refined theta)
    lf <- lFormula(as.formula(cs$formula), data = d, REML = cs$REML, contrasts = cs$contrasts)
    do.call(mkLmerDevfun, lf)(t) }, getME(m, "theta"))
  kr <- cs$REML && (!isFALSE(cs$kr) || kr_large)  # pbkrtest's dense n x n matrices: the small data sets only
  p <- length(fixef(m))
  L <- diag(p)[-1, , drop = FALSE]
  one <- list(id = cs$id, data = cs$data, formula = cs$formula, REML = cs$REML, contrasts = cs$contrasts,
              theta = unname(getME(m, "theta")),
              objective = unname(if (cs$REML) m@devcomp$cmp[["REML"]] else m@devcomp$cmp[["dev"]]),
              gradient = g, fixef_names = names(fixef(m)), L = L, tables = list())
  for (type in c("I", "II", "III")) {
    one$tables[[paste0("anova_", type, "_Satterthwaite")]] <- table_json(anova(m, type = type))
    if (kr) one$tables[[paste0("anova_", type, "_Kenward-Roger")]] <- table_json(anova(m, type = type, ddf = "Kenward-Roger"))
  }
  one$tables[["anova_lme4"]] <- table_json(anova(m, ddf = "lme4"))
  one$tables[["contest_joint_Satterthwaite"]] <- table_json(contest(m, L, joint = TRUE))
  one$tables[["contest_1D_Satterthwaite"]] <- table_json(contest(m, L, joint = FALSE))
  if (kr) {
    one$tables[["contest_joint_Kenward-Roger"]] <- table_json(contest(m, L, joint = TRUE, ddf = "Kenward-Roger"))
    one$tables[["contest_1D_Kenward-Roger"]] <- table_json(contest(m, L, joint = FALSE, ddf = "Kenward-Roger"))
  }
  one$tables[["drop1_Satterthwaite"]] <- table_json(drop1(m))
  one$tables[["drop1_Chisq"]] <- table_json(drop1(as(m, "lmerMod"), test = "Chisq"))
  one$tables[["ranova"]] <- table_json(ranova(m))
  one$emmeans <- list()
  for (e in cs$emm) {  # list(specs, by)
    for (ddf in c(if (kr) "kenward-roger", "satterthwaite")) {
      eg <- emmeans(m, specs = e[[1]], by = if (length(e) > 1) e[[2]] else NULL, lmer.df = ddf)
      em <- as.data.frame(summary(eg))
      prs <- lapply(c("tukey", "holm", "bonferroni", "none"), function(a) as.data.frame(summary(pairs(eg, adjust = a))))
      names(prs) <- c("tukey", "holm", "bonferroni", "none")
      one$emmeans[[length(one$emmeans) + 1]] <- list(
        specs = e[[1]], by = if (length(e) > 1) e[[2]] else NULL, ddf = ddf,
        table = lapply(em, function(v) if (is.factor(v)) as.character(v) else unname(as.numeric(v))),
        pairs = lapply(prs, function(p) lapply(p, function(v) if (is.factor(v) || is.character(v)) as.character(v) else unname(as.numeric(v)))))
    }
  }
  res[[length(res) + 1]] <- one
  message(cs$id, ": max |gradient of the deviance in theta| ", signif(max(abs(g)), 3))
}
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_file)
