"""Reports written from recorded runs alone: ``reports/README.md`` and its tables
(:mod:`zoo.reporting.report`), plots (:mod:`zoo.reporting.plots`) and sweep reports."""
