"""Op plugins written for the tests: faulty ones, one that shadows a built-in, one in a
domain of its own."""
