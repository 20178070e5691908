"""`sleeg bag`: the rosbag tools (`command`: the `sleeg bag` command line; `replay`: a bag through
the anomaly node; `report`: the report of a replay)."""
