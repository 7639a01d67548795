"""The scripts here run under gunpowder's own Python (/work/venvs/gp15), not under pytest."""

collect_ignore = ["make_gp_graph_fixtures.py", "gp_points_ride.py"]
