"""alphaforge factors: library, expression language, lookahead checks, scoring, proposals."""
