"""Process bootstrap: how a flow run's process starts (flow_start) and the warm runner that
has the flows imported before a run asks (warm_runner)."""
