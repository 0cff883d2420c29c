# One provisioning stage: some of the Dockerfile's scripts, from the same build context, then image cleanup.
# visa-build runs it once per stage, each from the previous stage's qcow2.

build {
  sources = ["source.qemu.visa"]

  provisioner "shell" {
    inline = ["cloud-init status --wait >/dev/null || true", "mkdir -p /tmp/visa-build-context"]
  }

  provisioner "file" {
    source      = "${var.context_dir}/"
    destination = "/tmp/visa-build-context"
  }

  provisioner "shell" {
    environment_vars = concat(
      [for name, value in var.provision_env : "${name}=${value}"],
      [for name, value in var.provision_secrets : "${name}=${value}"],
    )
    execute_command = "chmod +x {{ .Path }}; sudo env {{ .Vars }} {{ .Path }}"
    inline = concat(
      ["install -d -m 0755 /opt/visa/build", "cp -r /tmp/visa-build-context/provision /tmp/visa-build-context/spec /opt/visa/build/", "rm -rf /tmp/visa-build-context"],
      [for script in var.provision_scripts : "/opt/visa/build/provision/${script}"],
    )
  }

  post-processor "manifest" {
    output     = "${var.output_directory}/packer-manifest.json"
    strip_path = true
  }
}
