"""Statistics on camera-trap data: effort, detection histories, estimates."""
