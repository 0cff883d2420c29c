"""visa-build: build and test VISA JupyterLab images (qcow2 and a container double)."""
