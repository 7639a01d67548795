"""Scripts here that run in gunpowder's own virtualenv are not collected (gunpowder is not a
dependency of daskgp's tests; their outputs are committed fixtures)."""

collect_ignore = ["gunpowder_torch_checkpoint.py"]
collect_ignore_glob = ["make_*_fixtures.py"]
