"""The floor every other part of ssnc stands on: source spans, line ends, diagnostics and the
limits every phase shares. It imports nothing else of ssnc, so `grammar/`, `compiler/` and
`backends/` can all import it without an arrow pointing up."""
