"""What the web UI needs from the control plane before anyone has signed in."""

# The UI's pages: path → file of the built UI (webui/dist). One list for both hosts: the local front door
# (runner.front_door) and API Gateway's S3 integration (gpu_stack.stacks.webui).
UI_PAGES = {"/": "index.html", "/reference": "reference.html"}
