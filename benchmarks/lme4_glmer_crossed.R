# lme4's glmer on the crossed logistic design of issue 22 (benchmarks/glmer.py --big):
#   Rscript benchmarks/lme4_glmer_crossed.R data.csv
# prints one line: lme4|rows|elapsed seconds|deviance (-2 logLik)|theta|fixef|function evaluations
suppressMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
d$a <- factor(d$a); d$b <- factor(d$b)
t0 <- proc.time()[["elapsed"]]
m <- suppressWarnings(glmer(y ~ x + (1 | a) + (1 | b), d, family = binomial))
el <- proc.time()[["elapsed"]] - t0
cat("lme4", nrow(d), el, -2 * as.numeric(logLik(m)), paste(getME(m, "theta"), collapse = ","),
    paste(fixef(m), collapse = ","), m@optinfo$feval, "\n", sep = "|")
