"""The compute agent: channels, heartbeat monitors, discovery and reports to the controller."""
