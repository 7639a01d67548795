"""The fixture generators here run under gunpowder's interpreter only: pytest skips them."""

collect_ignore_glob = ["make_*_fixtures.py"]
