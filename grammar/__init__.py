"""The .ssn front end: grammar, parser and typed AST."""
