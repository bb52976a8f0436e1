# Reference fits for R's formula vocabulary in lme4 (issue 19): names, estimates, objective, theta.
# Run: Rscript tests/reference/formula_reference.R tests/reference/lme4_formulas.json
suppressMessages({library(lme4); library(jsonlite); library(splines)})
args <- commandArgs(trailingOnly = TRUE)
out_file <- if (length(args)) args[1] else "lme4_formulas.json"
sleepstudy <- lme4::sleepstudy
sleepstudy$Subject <- factor(as.character(sleepstudy$Subject))
# a second covariate with missing values in every 7th row (the model frame drops those rows)
sleepstudy$w2 <- ifelse(seq_len(nrow(sleepstudy)) %% 7 == 0, NA, (sleepstudy$Days * 7) %% 5)
sleepstudy$n <- sleepstudy$Days + 1
sleepstudy$g <- ifelse(sleepstudy$Days %% 2 == 0, "even", "odd")
sleepstudy$o <- factor(ifelse(sleepstudy$Days < 3, "lo", ifelse(sleepstudy$Days < 7, "mid", "hi")),
                       levels = c("lo", "mid", "hi"), ordered = TRUE)
grocery <- read.csv("datasets/grocery.csv", stringsAsFactors = TRUE)
cake <- read.csv("datasets/cake.csv", stringsAsFactors = TRUE)
cake$replicate <- factor(cake$replicate)
Hsb82 <- read.csv("datasets/Hsb82.csv", stringsAsFactors = TRUE)
Hsb82$school <- factor(Hsb82$school)
Penicillin <- read.csv("datasets/Penicillin.csv", stringsAsFactors = TRUE)
Dyestuff <- read.csv("datasets/Dyestuff.csv", stringsAsFactors = TRUE)
Pastes <- read.csv("datasets/Pastes.csv", stringsAsFactors = TRUE)
sleep3 <- sleepstudy[, c("Reaction", "Days", "Subject")]  # the bundled columns only, for '.'

cases <- list(
  list("sleepstudy", "Reaction ~ factor(Days) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ as.factor(Days) + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ sqrt(Days) + cos(Days) + (Days | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ log(Days + 1, base = 2) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ log1p(Days) + expm1(Days/10) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ scale(Days) + w2 + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ scale(Days) + w2 + (scale(Days) | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ poly(Days, 2) + w2 + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ poly(Days, 2, raw = TRUE) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ scale(Days, center = TRUE, scale = FALSE) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ pmin(Days, 5) + pmax(Days, 3) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ floor(Days/2) + ceiling(Days/3) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ abs(Days - 4) + sign(Days - 4) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ as.numeric(Days) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ I(Days > 3) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days + ((1 | Subject))", TRUE),
  list("sleepstudy", "Reaction ~ sin(2*pi*Days/10) + tan(Days/10) + round(Days/3) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ poly(Days, 3, raw = T) + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ scale(Days, scale = F) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ I(Days/1e3) + I(Days^2 * 1e5) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days + I(Days > 4.5):Days + (Days || Subject)", TRUE),
  list("cake", "angle ~ log(temp) + I(temp^2/1000) + (1 | recipe:replicate)", TRUE),
  list("cake", "angle ~ factor(recipe) + sqrt(temp) + (1 | replicate)", TRUE),
  list("cake", "angle ~ C(recipe, contr.helmert) + temp + (1 | replicate)", FALSE),
  list("Hsb82", "mAch ~ scale(meanses) + cses + (1 | school)", FALSE),
  list("Hsb82", "mAch ~ factor(sector) * cses + abs(ses) + (1 | school)", TRUE),
  list("Penicillin", "diameter ~ 1 + ((1 | plate)) + (1 | sample)", TRUE),
  list("sleepstudy", "Reaction ~ Days + offset(log(n)) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days + offset(10 * Days) + offset(w2) + (Days | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ offset(sqrt(n)) + Days + (1 | Subject)", FALSE, offset = "n"),
  list("sleepstudy", "Reaction ~ relevel(factor(g), ref = 'odd') + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ relevel(factor(Days), ref = '3') + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ Days + (g || Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days*g - g + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ (Days + g + I(Days > 5))^2 + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ g/Days + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days %in% g + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ 0 + g + Days + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ g - 1 + (Days | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ o + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ (Days + g + o)^2 + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ Days * o + (o | Subject)", FALSE),
  list("sleep3", "Reaction ~ . - Subject + (Days | Subject)", TRUE),
  list("cake", "angle ~ . - replicate - temperature + (1 | replicate)", TRUE),
  list("Dyestuff", "log(Yield) ~ 1 + (1 | Batch)", TRUE),
  list("Dyestuff", "sqrt(Yield) ~ 1 + (1 | Batch)", FALSE),
  list("Dyestuff", "I(Yield/100) ~ 1 + ((1 | Batch))", TRUE),
  list("Pastes", "strength ~ 1 + (1 | batch/cask)", TRUE),
  list("Pastes", "I(strength - 60) ~ 1 + (1 | batch) + (1 | batch:cask)", FALSE),
  list("Penicillin", "log(diameter) ~ 1 + (1 | plate) + (1 | sample)", TRUE),
  list("Hsb82", "mAch ~ sector * cses + (cses | school)", TRUE, contrasts = list(sector = "contr.sum")),
  list("Hsb82", "mAch ~ poly(ses, 2) + sector + (1 | school)", FALSE),
  list("Hsb82", "mAch ~ I(ses > 0) * sector + (1 | school)", TRUE),
  list("sleepstudy", "Reaction ~ factor(w2) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ factor(Days > 3) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ relevel(factor(w2), ref = '3') + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ factor(as.numeric(factor(g))) + Days + (1 | Subject)", TRUE),
  list("grocery", "price ~ C(store, contr.sum) + (1 | item)", FALSE),
  list("grocery", "price ~ store + (1 | item)", FALSE, contrasts = list(store = "contr.sum")),
  list("grocery", "price ~ store + (1 | item)", TRUE, contrasts = list(store = "contr.helmert")),
  list("grocery", "price ~ store + (1 | item)", TRUE, contrasts = list(store = "contr.poly")),
  list("grocery", "price ~ store + (1 | item)", FALSE, contrasts = list(store = "contr.SAS")),
  list("cake", "angle ~ recipe * temp + (1 | replicate)", TRUE, contrasts = list(recipe = "contr.sum")),
  list("grocery", "price ~ factor(store) + (1 | item)", FALSE),
  # splines, R's contrast functions inside C(), ordered(), factor levels, c(), R's parentheses
  list("sleepstudy", "Reaction ~ ns(Days, df = 3) + (1 | Subject)", TRUE, predict_days = c(-2, 4.5, 9, 12)),
  list("sleepstudy", "Reaction ~ ns(Days, knots = c(2.5, 6), Boundary.knots = c(0, 10)) + (Days | Subject)", FALSE,
       predict_days = c(-1, 3.3, 11)),
  list("sleepstudy", "Reaction ~ ns(Days, df = 3, intercept = TRUE) + 0 + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ bs(Days, degree = 2, knots = c(3, 6)) + (1 | Subject)", FALSE, predict_days = c(-1, 2.5, 10)),
  list("sleepstudy", "Reaction ~ bs(Days, df = 4) + (1 | Subject)", TRUE),
  list("Hsb82", "mAch ~ ns(ses, df = 4) + sector + (1 | school)", FALSE),
  list("grocery", "price ~ C(store, contr.treatment(4, base = 2)) + (1 | item)", FALSE),
  list("grocery", "price ~ C(store, contr.treatment, base = 3) + (1 | item)", TRUE),
  list("grocery", "price ~ C(store, contr.sum(4)) + (1 | item)", FALSE),
  list("grocery", "price ~ C(store, contr.helmert) + (1 | item)", TRUE),
  list("grocery", "price ~ C(store, contr.poly) + (1 | item)", FALSE),
  list("grocery", "price ~ C(store, contr.SAS) + (1 | item)", FALSE),
  list("grocery", "price ~ C(store, \"contr.sum\") + (1 | item)", TRUE),
  list("sleepstudy", "Reaction ~ ordered(g) * Days + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ factor(o) + C(o) + 0 + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ ordered(w2, levels = c(4, 3, 2, 1, 0)) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ factor(g, levels = c('odd', 'even')) + Days + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ factor(Days > 4, labels = c('early', 'late')) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ I(Days - (-1)) + log((Days + 1)) + (1 | Subject)", TRUE),
  list("sleepstudy", "Reaction ~ I(((Days))^2) + I((Days + 1)^-1) + I(2^-Days) + (1 | Subject)", FALSE),
  list("sleepstudy", "Reaction ~ Days * g - Days:g + (1 | Subject)", TRUE),
  list("cake", "angle ~ recipe * temp - recipe:temp + (1 | replicate)", FALSE)
)
res <- list()
for (cs in cases) {
  d <- get(cs[[1]])
  off <- if (!is.null(cs$offset)) d[[cs$offset]] else NULL  # the offset argument: a column of the data
  m <- lmer(as.formula(cs[[2]]), data = d, REML = cs[[3]], offset = off, contrasts = cs$contrasts)
  res[[length(res) + 1]] <- list(
    dataset = cs[[1]], formula = cs[[2]], REML = cs[[3]], offset = cs$offset, contrasts = cs$contrasts,
    fixef_names = names(fixef(m)), fixef = unname(fixef(m)), se = unname(sqrt(diag(as.matrix(vcov(m))))),
    theta = unname(getME(m, "theta")), objective = unname(if (cs[[3]]) m@devcomp$cmp[["REML"]] else m@devcomp$cmp[["dev"]]),
    sigma = sigma(m), nobs = nobs(m), cnms = getME(m, "cnms")
  )
  if (!is.null(cs$predict_days)) {  # population-level predictions on new Days, beyond the data's range too
    nd <- data.frame(Days = cs$predict_days)
    res[[length(res)]]$predict_days <- cs$predict_days
    res[[length(res)]]$predictions <- unname(suppressWarnings(predict(m, newdata = nd, re.form = NA)))
  }
}
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), out_file)
