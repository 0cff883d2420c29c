# Only for Packer 1.7 and newer (1.6 rejects this block; its QEMU builder is built in). visa-build adds this
# file to the templates it runs when the installed Packer needs it; by hand: copy it beside the others.
packer {
  required_plugins {
    qemu = {
      version = ">= 1.1.0"
      source  = "github.com/hashicorp/qemu"
    }
  }
}
