"""What the web UI needs from the control plane before anyone has signed in."""
