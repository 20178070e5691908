"""`sleeg bag`: image folders → rosbag2 (`make`), bag summaries (`info`), and replays of a bag
through the anomaly node with a report (`evaluate`, `replay`, `report`); `command` wires the
subcommands into the `sleeg` command line."""
