"""Channel discovery drivers (stevedore namespace ha_guest.compute.discovery)."""
