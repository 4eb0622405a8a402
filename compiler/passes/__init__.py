"""IR passes, one job each, named by verbs."""
