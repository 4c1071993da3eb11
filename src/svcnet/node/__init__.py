"""Node agent: pod plans (pure) and the netns/links/processes/probes edge."""
