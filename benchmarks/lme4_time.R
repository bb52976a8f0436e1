# Time lme4 for the sparselmm benchmark runner (benchmarks/run.py).
#
#   Rscript benchmarks/lme4_time.R mode=fit data=case.csv formula='y ~ x + (1|g)' \
#       reml=FALSE factors=g,h repeat=5 slow=10
#   Rscript benchmarks/lme4_time.R mode=devfun data=n.csv formula=... theta=1,0.5 evals=10
#
# Prints one JSON object per line (flushed), like benchmarks/worker.py:
#   {"event":"ready",...}, {"event":"fit",...} per fit (the first a warm-up),
#   {"event":"done", "peak_rss_mb":...}; or {"event":"error","message":...}.
# Only the lmer() call is timed (data are read and factors built before).
# Memory: before each fit VmHWM is reset via /proc/self/clear_refs; fit_peak_mb
# is VmHWM after the fit minus VmRSS before it; peak_rss_mb the process peak.

suppressPackageStartupMessages({
  library(lme4)
  library(jsonlite)
  library(data.table)
})

args <- list(mode = "fit", reml = "FALSE", factors = "", `repeat` = "5", slow = "10",
             theta = "", evals = "10")
for (a in commandArgs(trailingOnly = TRUE)) {
  k <- sub("=.*$", "", a)
  args[[k]] <- sub("^[^=]*=", "", a)
}

emit <- function(...) {
  cat(toJSON(list(...), auto_unbox = TRUE, digits = NA, null = "null"), "\n", sep = "")
  flush(stdout())
}

status_kb <- function(key) {
  s <- tryCatch(readLines("/proc/self/status"), error = function(e) character())
  l <- grep(paste0("^", key, ":"), s, value = TRUE)
  if (length(l) == 0) return(NA_real_)
  as.numeric(gsub("[^0-9]", "", l[1]))
}
peak_kb <- 0
note_peak <- function() peak_kb <<- max(peak_kb, status_kb("VmHWM"), na.rm = TRUE)
reset_hwm <- function() {
  note_peak()
  ok <- tryCatch({ cat("5", file = "/proc/self/clear_refs"); TRUE }, error = function(e) FALSE,
                 warning = function(w) FALSE)
  ok
}
now <- function() as.numeric(Sys.time())
cpu <- function() { p <- proc.time(); p[["user.self"]] + p[["sys.self"]] }
loadavg <- function() as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1])

read_case <- function() {
  t0 <- now()
  factors <- if (nzchar(args$factors)) strsplit(args$factors, ",")[[1]] else character()
  cc <- setNames(rep("character", length(factors)), factors)
  df <- as.data.frame(fread(args$data, colClasses = cc, showProgress = FALSE))
  for (f in factors) df[[f]] <- factor(df[[f]])
  emit(event = "ready", load_seconds = now() - t0, rss_mb = status_kb("VmRSS") / 1024, nrow = nrow(df))
  df
}

main <- function() {
  df <- read_case()
  form <- as.formula(args$formula)
  REML <- as.logical(args$reml)
  if (args$mode == "fit") {
    runs <- 1 + as.integer(args[["repeat"]])
    slow <- as.numeric(args$slow)
    i <- 0
    while (i < runs) {
      invisible(gc())
      resettable <- reset_hwm()
      rss0 <- status_kb("VmRSS")
      c0 <- cpu(); t0 <- now()
      m <- withCallingHandlers(lmer(form, data = df, REML = REML),
                               warning = function(w) { warns <<- c(warns, conditionMessage(w)); invokeRestart("muffleWarning") })
      secs <- now() - t0; cpus <- cpu() - c0
      fit_peak <- if (resettable) (status_kb("VmHWM") - rss0) / 1024 else NA
      cmp <- getME(m, "devcomp")$cmp
      obj <- if (REML) cmp[["REML"]] else cmp[["dev"]]
      emit(event = "fit", i = i, warmup = (i == 0), seconds = secs, cpu_seconds = cpus,
           objective = obj, feval = m@optinfo$feval, fit_peak_mb = fit_peak,
           optimizer = m@optinfo$optimizer, theta = unname(getME(m, "theta")),
           loadavg = loadavg(), warnings = unique(c(warns, unlist(m@optinfo$conv$lme4$messages))))
      warns <<- character()
      rm(m)
      if (i == 0 && secs > slow) break
      i <- i + 1
    }
  } else if (args$mode == "devfun") {
    theta <- as.numeric(strsplit(args$theta, ",")[[1]])
    evals <- as.integer(args$evals)
    invisible(gc())
    reset_hwm(); rss0 <- status_kb("VmRSS")
    t0 <- now()
    lf <- lFormula(form, data = df, REML = REML)
    devfun <- do.call(mkLmerDevfun, lf)
    design_s <- now() - t0
    design_peak <- (status_kb("VmHWM") - rss0) / 1024
    rm(df); invisible(gc())
    v <- devfun(theta)
    times <- numeric(evals); cpus <- numeric(evals)
    for (k in seq_len(evals)) {
      th <- theta * (1 + 1e-9 * k)  # distinct θ, as in benchmarks/worker.py
      c0 <- cpu(); t0 <- now(); last <- devfun(th); times[k] <- now() - t0; cpus[k] <- cpu() - c0
    }
    emit(event = "scaling", n = nrow(lf$fr), design_seconds = design_s, design_peak_mb = design_peak,
         ms_per_eval_mean = 1e3 * mean(times), ms_per_eval_median = 1e3 * median(times),
         ms_per_eval_min = 1e3 * min(times), cpu_ms_per_eval_mean = 1e3 * mean(cpus), evals = evals, objective_at_theta = v,
         objective_last = last, loadavg = loadavg())
  }
  note_peak()
  emit(event = "done", peak_rss_mb = peak_kb / 1024,
       version = paste0("lme4 ", packageVersion("lme4"), ", Matrix ", packageVersion("Matrix"),
                        ", ", R.version.string),
       blas = tryCatch(sessionInfo()$BLAS, error = function(e) ""))
}

warns <- character()
tryCatch(main(), error = function(e) {
  emit(event = "error", message = conditionMessage(e))
  quit(status = 2)
})
