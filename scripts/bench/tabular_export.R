# tabular_export.R — writes the R data sets of scripts/bench/tabular as numeric CSV files
# (Debian's r-cran-modeldata and r-cran-kernlab). Not the splits (tabular_data.py does them).
# usage: Rscript tabular_export.R OUTDIR SET...   -> OUTDIR/SET.csv and OUTDIR/SET.classes
#
# Every CSV: a header row, the predictors, then the class index in a last column `label`.
#   - rows with a missing value in any column are dropped (no imputation);
#   - unordered factors (and logicals) are one-hot encoded, one 0/1 column per level that
#     occurs; ordered factors become their level number 1..L (the order is the information);
#   - ID columns are dropped (`drop` below: cells' `case` is a train/test marker);
#   - `obj`: the object to take when the data set holds several (bivariate: its training part);
#   - the label is the class index 0..K-1 in the factor's level order (levels without rows
#     dropped); SET.classes holds the class names, one a line, in index order.

sets <- list(
  scat          = list(pkg = "modeldata", label = "Species",   drop = character()),
  oils          = list(pkg = "modeldata", label = "class",     drop = character()),
  ad_data       = list(pkg = "modeldata", label = "Class",     drop = character()),
  musk          = list(pkg = "kernlab",   label = "Class",     drop = character()),
  two_class_dat = list(pkg = "modeldata", label = "Class",     drop = character()),
  attrition     = list(pkg = "modeldata", label = "Attrition", drop = character()),
  hpc_data      = list(pkg = "modeldata", label = "class",     drop = character()),
  ticdata       = list(pkg = "kernlab",   label = "CARAVAN",   drop = character()),
  # measurement sets (scripts/bench/tabular --sets only): never part of the benchmark
  cells         = list(pkg = "modeldata", label = "class",     drop = "case"),
  credit_data   = list(pkg = "modeldata", label = "Status",    drop = character()),
  mlc_churn     = list(pkg = "modeldata", label = "churn",     drop = character()),
  stackoverflow = list(pkg = "modeldata", label = "Remote",    drop = character()),
  wa_churn      = list(pkg = "modeldata", label = "churn",     drop = character()),
  lending_club  = list(pkg = "modeldata", label = "Class",     drop = character()),
  parabolic     = list(pkg = "modeldata", label = "class",     drop = character()),
  pd_speech     = list(pkg = "modeldata", label = "class",     drop = character()),
  penguins      = list(pkg = "modeldata", label = "species",   drop = character()),
  bivariate     = list(pkg = "modeldata", label = "Class",     drop = character(), obj = "bivariate_train")
)

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 2) stop("usage: Rscript tabular_export.R OUTDIR SET...")
out <- args[1]
dir.create(out, recursive = TRUE, showWarnings = FALSE)

clean_name <- function(s) gsub("[^A-Za-z0-9_]", "_", s)

for (name in args[-1]) {
  spec <- sets[[name]]
  if (is.null(spec)) stop(sprintf("unknown set '%s'; known: %s", name, paste(names(sets), collapse = ", ")))
  e <- new.env()
  suppressMessages(data(list = name, package = spec$pkg, envir = e))
  d <- as.data.frame(get(if (is.null(spec$obj)) name else spec$obj, envir = e))
  d <- d[, setdiff(names(d), spec$drop), drop = FALSE]
  d <- d[complete.cases(d), , drop = FALSE]
  y <- droplevels(as.factor(d[[spec$label]]))
  x <- d[, setdiff(names(d), spec$label), drop = FALSE]
  cols <- list()
  for (v in names(x)) {
    col <- x[[v]]
    if (is.ordered(col)) {
      cols[[clean_name(v)]] <- as.integer(droplevels(col))
    } else if (is.factor(col) || is.character(col) || is.logical(col)) {
      f <- droplevels(as.factor(col))
      for (l in levels(f)) cols[[clean_name(paste(v, l, sep = "_"))]] <- as.integer(f == l)
    } else {
      cols[[clean_name(v)]] <- as.numeric(col)
    }
  }
  m <- as.data.frame(cols, check.names = FALSE)
  names(m) <- make.unique(names(m), sep = "_")
  m$label <- as.integer(y) - 1L
  write.csv(m, file.path(out, paste0(name, ".csv")), row.names = FALSE, quote = FALSE)
  writeLines(levels(y), file.path(out, paste0(name, ".classes")))
}
