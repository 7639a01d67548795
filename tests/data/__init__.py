"""Pipeline files and other inputs read by the tests (run by path, e.g. by ``daskgp``)."""
